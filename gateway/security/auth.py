"""API keys and per-key limits, as one pure-ASGI middleware (no BaseHTTPMiddleware: it would buffer streams).

Keys come from `GATEWAY_API_KEYS` (comma-separated; named `key-1`, `key-2`, ... in order) and/or
`GATEWAY_KEYS_FILE` (YAML list of `{name, key, requests_per_minute?, max_concurrency?}`). Only each key's
SHA-256 digest and name are kept; a presented key is hashed and compared with every digest using
`hmac.compare_digest`, so neither its length nor how much of it matched shows in the timing. Keys never reach
a log, a metric label or an error message: those carry the key's name.

With no keys configured the middleware is not installed at all (the gateway is open, and says so at start-up).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import RateLimited, Unauthorized
from gateway.models.registry import ConfigError
from gateway.observability.metrics import GatewayMetrics
from gateway.security.rate_limit import KeyPolicy, Limiter, MemoryLimiter, RedisLimiter, Ticket
from gateway.settings import Settings

# Liveness, readiness and the API's own documentation (its pages' scripts and styles too, gateway/routes/docs_pages.py)
# stay reachable without a key.
DOCS_ASSET_PREFIX = "/docs/assets/"
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
OPEN_PATHS = frozenset(
    {"/health", "/ready", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    | {DOCS_ASSET_PREFIX + name for name in DOCS_ASSETS}
)
METRICS_PATH = "/metrics"


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")]
    key: Annotated[str, Field(min_length=1, repr=False)]
    requests_per_minute: Annotated[int | None, Field(ge=0)] = None  # 0: unlimited
    max_concurrency: Annotated[int | None, Field(ge=0)] = None  # 0: unlimited


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    """The configured keys, as (digest, policy) pairs."""

    def __init__(self, entries: Iterable[tuple[bytes, KeyPolicy]]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, key: bytes) -> KeyPolicy | None:
        """The policy of `key`; every digest is compared (no early exit), each in constant time."""
        digest = hashlib.sha256(key).digest()
        found = None
        for candidate, policy in self._entries:
            if hmac.compare_digest(candidate, digest):
                found = policy
        return found


def _read_keys_file(path: Path) -> list[_KeyEntry]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML: {type(exc).__name__}") from None
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: must be a non-empty YAML list of {{name, key, requests_per_minute?, ...}}")
    entries = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: entry {index + 1}: must be a mapping with `name` and `key`")
        try:
            entries.append(_KeyEntry.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]  # its `msg` never contains the input value, so no key leaks here
            field = ".".join(str(part) for part in first["loc"]) or "(entry)"
            raise ConfigError(f"{path}: entry {index + 1}, field `{field}`: {first['msg']}") from None
    return entries


def load_key_ring(settings: Settings) -> KeyRing | None:
    """The keys from the settings, or None when none is configured. ConfigError names the file and field."""
    entries = [
        _KeyEntry(name=f"key-{number}", key=secret.get_secret_value())
        for number, secret in enumerate(settings.api_keys, start=1)
    ]
    if settings.keys_file is not None:
        entries += _read_keys_file(settings.keys_file)
    if not entries:
        return None
    names: set[str] = set()
    digests: dict[bytes, str] = {}
    ring = []
    for entry in entries:
        where = f"{settings.keys_file}: " if settings.keys_file is not None else "GATEWAY_API_KEYS: "
        if entry.name in names:
            raise ConfigError(f"{where}field `name`: {entry.name!r} is used twice")
        digest = _digest(entry.key)
        if digest in digests:
            raise ConfigError(f"{where}field `key`: keys {digests[digest]!r} and {entry.name!r} are the same key")
        names.add(entry.name)
        digests[digest] = entry.name
        rpm = settings.default_rpm if entry.requests_per_minute is None else entry.requests_per_minute
        concurrency = settings.default_max_concurrency if entry.max_concurrency is None else entry.max_concurrency
        ring.append((digest, KeyPolicy(entry.name, rpm, concurrency)))
    return KeyRing(ring)


def make_limiter(settings: Settings) -> Limiter:
    """Redis when `GATEWAY_REDIS_URL` is set (limits shared by replicas), else this process's memory."""
    if settings.redis_url:
        return RedisLimiter(
            settings.redis_url, slot_ttl_s=settings.redis_slot_ttl_s, fail_open=settings.redis_fail_open
        )
    return MemoryLimiter()


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = bytes(value).partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return None


class AuthMiddleware:
    """Checks the Bearer key, applies its limits, and holds its concurrency slot to the answer's last byte."""

    def __init__(
        self, app: ASGIApp, keys: KeyRing, limiter: Limiter, metrics: GatewayMetrics, *, guard_metrics: bool
    ) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.metrics = metrics
        self.open_paths = OPEN_PATHS if guard_metrics else OPEN_PATHS | {METRICS_PATH}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if not token:
            self.metrics.auth_failures.labels("missing").inc()
            raise Unauthorized(
                "You didn't provide an API key. Send it in the Authorization header: `Authorization: Bearer <key>`."
            )
        policy = self.keys.find(token)
        if policy is None:
            self.metrics.auth_failures.labels("invalid").inc()
            raise Unauthorized("Incorrect API key provided.")
        scope.setdefault("state", {})["api_key_name"] = policy.name  # for logs: the name, never the key
        if scope["path"] == METRICS_PATH:
            # A scrape is checked, not counted: Prometheus every 15 s must neither spend a client's request budget
            # nor be refused with a 429 when that client is busy.
            await self.app(scope, receive, send)
            return
        try:
            ticket = await self.limiter.acquire(policy)
        except RateLimited as exc:
            limit = "requests" if exc.code == "rate_limit_exceeded" else "concurrency"
            self.metrics.rate_limited.labels(policy.name, limit).inc()
            raise
        await self._serve(ticket, scope, receive, send)

    async def _serve(self, ticket: Ticket, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limiter
        extra = ticket.headers

        async def send_and_release(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
                await send(message)
                return
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False):
                await limiter.release(ticket)  # the last byte is out: the slot is free for the next request

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            await limiter.release(ticket)  # errors, disconnects, cancellation; a no-op after the last byte
