"""Cross-origin requests from browsers (CORS), when `GATEWAY_CORS_ORIGINS` names origins; else nothing at all.

Starlette's CORSMiddleware (pure ASGI: streams pass through unbuffered), which `GatewayApp` wraps around its
whole dispatch, inside the request ids: the chat hot path, FastAPI's routes and the 401/429 answers of the
API-key check all carry the headers, and a preflight is answered before the key check runs (a browser never
sends credentials on a preflight, so a checked preflight would always fail).

Request headers: any the browser asks for (`Access-Control-Request-Headers` is mirrored back). The OpenAI SDK
in a browser sends Authorization and Content-Type plus its own `x-stainless-*` (language, OS, runtime, retry
count, timeout, ...) and `openai-*` headers, and each SDK release may add one; an explicit list would turn
the next one into a failed preflight, i.e. a broken client, with nothing gained: the list guards servers
that trust a custom header as proof of a same-site request, and the gateway trusts only the API key.
Origins are what CORS protects, and those are explicit unless the operator says `*`.

Response headers exposed to scripts: the request id and the rate-limit answers a client acts on.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from gateway.security.rate_limit import RATE_HEADER_NAMES, RETRY_AFTER
from gateway.settings import Settings

ALLOW_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
EXPOSE_HEADERS = ("X-Request-Id", RETRY_AFTER, *RATE_HEADER_NAMES)


def cors_middleware(settings: Settings) -> Callable[[ASGIApp], ASGIApp] | None:
    """A wrapper adding CORS to an ASGI app, or None when no origin is configured (nothing on the path)."""
    if not settings.cors_origins:
        return None
    return partial(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=ALLOW_METHODS,
        allow_headers=("*",),
        allow_credentials=settings.cors_allow_credentials,
        expose_headers=EXPOSE_HEADERS,
        max_age=settings.cors_max_age_s,
    )
