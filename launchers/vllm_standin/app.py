"""The stand-in's aiohttp application: vLLM's routes plus `/_standin/*` test-control routes.

Served like `vllm serve`: `/health`, `/ping`, `/version`, `/metrics`, `GET /v1/models` and
`POST /v1/chat/completions`. Everything under `/_standin/` is test control, not part of vLLM.
Run it with `handler_cancellation=True` (StandinServer and the CLI do) so that a client leaving
cancels its request, as in vLLM.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from . import shapes
from .chat import INVALID_JSON, ChatCompletions
from .config import StandinConfig
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import label_set, render_metrics
from .state import RecordedRequest, StandinState

STATE_KEY = web.AppKey("standin_state", StandinState)
CONFIG_KEY = web.AppKey("standin_config", StandinConfig)
_RECORD_KEY = web.RequestKey("standin_record", RecordedRequest)
_BODY_KEY = web.RequestKey("standin_body", object)

VERSION = "0.32.0-standin"
_MAX_BODY = 1 << 30  # uvicorn has no body limit; base64 page images easily pass aiohttp's 1 MiB


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response serialized with orjson, typed `application/json` like Starlette's."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def create_standin_app(config: StandinConfig, state: StandinState | None = None) -> web.Application:
    """Build the aiohttp app imitating `vllm serve` for `config`; `state` is shared if given."""
    state = state if state is not None else StandinState.from_config(config)
    app = web.Application(client_max_size=_MAX_BODY, middlewares=[_standin_middleware(config, state)])
    app[STATE_KEY] = state
    app[CONFIG_KEY] = config

    async def bind_state(_: web.Application) -> None:
        state.bind_loop(config.max_num_seqs)

    app.on_startup.append(bind_state)
    chat = ChatCompletions(config, state)
    labels = label_set(config)

    async def health(_: web.Request) -> web.Response:
        # vLLM answers with an empty body: 200 when the engine is alive, 503 when it is dead.
        return web.Response(status=200 if state.faults.healthy else 503)

    async def version(_: web.Request) -> web.Response:
        return json_response({"version": VERSION})

    async def metrics(_: web.Request) -> web.Response:
        body = render_metrics(config, state, labels)
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def models(_: web.Request) -> web.Response:
        return json_response(shapes.model_list(config))

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        return await chat.handle(request, request[_RECORD_KEY], request[_BODY_KEY])

    app.router.add_get("/health", health)
    app.router.add_route("*", "/ping", health)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    _add_control_routes(app, state)
    return app


def _add_control_routes(app: web.Application, state: StandinState) -> None:
    async def get_faults(_: web.Request) -> web.Response:
        return json_response(state.faults.to_dict())

    async def set_faults(request: web.Request) -> web.Response:
        try:
            values = orjson.loads(await request.read())
            if not isinstance(values, dict):
                raise ValueError("the body must be a JSON object of fault fields")
            state.faults.update(values)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
            return json_response(shapes.error_body(str(exc), "BadRequestError", 400), 400)
        return json_response(state.faults.to_dict())

    async def reset_faults(_: web.Request) -> web.Response:
        state.faults.reset()
        return json_response(state.faults.to_dict())

    async def get_requests(_: web.Request) -> web.Response:
        return json_response(
            {
                "requests": [rec.to_json() for rec in state.requests],
                "completed_count": state.completed_count,
                "aborted_count": state.aborted_count,
                "running": state.running,
                "waiting": state.waiting,
            }
        )

    async def clear_requests(_: web.Request) -> web.Response:
        return json_response({"cleared": state.clear_requests()})

    app.router.add_get("/_standin/faults", get_faults)
    app.router.add_post("/_standin/faults", set_faults)
    app.router.add_delete("/_standin/faults", reset_faults)
    app.router.add_get("/_standin/requests", get_requests)
    app.router.add_delete("/_standin/requests", clear_requests)


def _standin_middleware(config: StandinConfig, state: StandinState) -> Middleware:
    """Record `/v1/*` requests, check the API key like vLLM, and give FastAPI's 404/405 bodies."""
    token_hash = None if config.api_key is None else hashlib.sha256(config.api_key.encode()).digest()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rec = None
        if request.path.startswith("/v1"):
            rec = await _record(request, state, config.record_bodies)
            # vLLM's AuthenticationMiddleware: "Bearer <key>" (scheme case-insensitive) on /v1.
            if token_hash is not None and request.method != "OPTIONS" and not _authorized(request, token_hash):
                state.finish(rec, "error", 401)
                return json_response(shapes.unauthorized_body(), 401)
        try:
            resp = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            resp = json_response(shapes.route_error_body(exc.status), exc.status)
            if isinstance(exc, web.HTTPMethodNotAllowed):
                resp.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        if rec is not None:  # a no-op when the chat handler already set the outcome
            state.finish(rec, "completed" if resp.status < 400 else "error", resp.status)
        return resp

    return middleware


async def _record(request: web.Request, state: StandinState, keep_body: bool) -> RecordedRequest:
    parsed: object = None
    if request.body_exists:
        try:
            parsed = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            parsed = INVALID_JSON
    request[_BODY_KEY] = parsed
    headers = {name.lower(): value for name, value in request.headers.items()}
    body = parsed if keep_body and isinstance(parsed, dict) else None
    rec = state.record(request.method, request.path, headers, body)
    request[_RECORD_KEY] = rec
    return rec


def _authorized(request: web.Request, token_hash: bytes) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), token_hash)
