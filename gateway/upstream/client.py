"""The upstream client: one pooled aiohttp session that sends a request body to a model's vLLM server.

Why aiohttp and not httpx: on this project's 2-core loopback rig, one small POST round trip costs about
200 µs with aiohttp and 700 µs with httpx 0.28 (see docs/architecture.md), and the gateway's whole budget
is 250 µs. The control plane (health probes) stays on httpx, where speed does not matter.

`open_response` returns only a 2xx response whose body has not been read: from then on bytes may reach the
client, so nothing after it is retried. Everything before it is: connection refused or reset, a connect
timeout, or a 502/503 from the upstream are retried with backoff (tenacity), moving to the next replica
(failover). The exception is `fetch`, which reads the whole answer before the client sees any of it: an
answer that breaks off mid-body is asked for once more, from another replica when there is one.

Every exchange feeds its replica's state: requests outstanding (until the body is read, released or
closed) for load balancing, and successes and failures for its circuit breaker (gateway/upstream/circuit_breaker.py).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from gateway.errors import GatewayError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.upstream.answer_body import read_capped
from gateway.upstream.errors import parse_upstream_error
from gateway.upstream.served_models import ServedModel, Upstream

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({502, 503})
_ERROR_BODY_BYTES = 1024 * 1024  # an error body is a short JSON message; past this it is not vLLM's


class _TrackedResponse(aiohttp.ClientResponse):
    """A response that calls back once when it is finished: read to the end, released or closed.

    That is when its request stops counting against the replica's load. Set as the session's
    `response_class`, so the callers keep handling a plain aiohttp response.
    """

    _on_done: Callable[[], None] | None = None
    upstream: Upstream | None = None  # the replica that answered

    def track(self, on_done: Callable[[], None]) -> None:
        self._on_done = on_done
        self.content.on_eof(self._done)  # at once if the body was already read

    def _done(self) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done()

    def close(self) -> None:
        super().close()
        self._done()

    def release(self) -> Any:
        result = super().release()
        self._done()
        return result


class _Retryable(Exception):
    """A failure that happened before any byte reached the client and may succeed elsewhere or later."""

    def __init__(self, kind: str, final: GatewayError) -> None:
        super().__init__(final.message)
        self.kind = kind
        self.final = final  # what the client gets if no attempt succeeds


class _BrokenOff(Exception):
    """A 2xx answer that broke off mid-body, before any of it reached the client."""

    def __init__(self, final: GatewayError, upstream: Upstream | None) -> None:
        super().__init__(final.message)
        self.final = final
        self.upstream = upstream  # the replica that broke off


def _upstream_of(response: aiohttp.ClientResponse) -> Upstream | None:
    return response.upstream if isinstance(response, _TrackedResponse) else None


def _payload(body: bytes) -> bytes | aiohttp.BytesPayload:
    """The body as aiohttp should send it.

    aiohttp warns (ResourceWarning) about bytes over 1 MB, suggesting a BytesIO so it can send in chunks.
    The body is already in memory and the transport buffers the write without blocking the loop, so
    chunking would only add a copy and a drain per chunk: build the payload with the advice silenced.
    """
    if len(body) <= aiohttp.payload.TOO_LARGE_BYTES_BODY:
        return body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return aiohttp.BytesPayload(body, content_type="application/json")


class UpstreamClient:
    """Sends requests to upstreams over one connection pool, with explicit timeouts and safe retries."""

    def __init__(self, settings: Settings, metrics: GatewayMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the pool; must run inside the serving event loop."""
        settings = self._settings
        connector = aiohttp.TCPConnector(
            limit=0,  # no global cap: the per-upstream cap below is what protects each vLLM server
            limit_per_host=settings.max_connections_per_upstream,
            ttl_dns_cache=300,
        )
        timeout = aiohttp.ClientTimeout(
            total=None,  # a long generation that keeps streaming must never be cut by a wall clock
            connect=settings.pool_timeout_s,  # waiting for a pooled connection + connecting
            sock_connect=settings.connect_timeout_s,
            sock_read=settings.read_timeout_s,  # silence between two reads
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            skip_auto_headers=("User-Agent",),
            # Compressed answers could inflate without bound inside aiohttp: ask for none, and undo any that come
            # anyway ourselves, in bounded pieces (gateway/upstream/answer_body.py).
            headers={"Accept-Encoding": "identity"},
            auto_decompress=False,
            response_class=_TrackedResponse,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def open_response(
        self,
        model: ServedModel,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        avoid: Upstream | None = None,
    ) -> aiohttp.ClientResponse:
        """POST `body` to `path` on one of the model's upstreams; return a 2xx response, unread.

        The caller owns the response and must `release()` (finished) or `close()` (abandoned) it.
        `avoid` goes last in the order (the replica that just failed this request). Raises a GatewayError:
        the upstream's own 4xx, or 503/504/5xx when no attempt succeeded.
        """
        order = model.attempt_order()
        if avoid is not None and len(order) > 1:
            order.sort(key=lambda upstream: upstream is avoid)
        try:
            # The common case pays for no retry machinery at all.
            return await self._attempt(model, order[0], path, body, headers)
        except _Retryable as first_failure:
            failure = first_failure
        attempts = self._settings.retry_attempts
        if attempts < 2:
            raise failure.final
        self._metrics.upstream_retries.labels(model.name, failure.kind).inc()
        backoff = self._settings.retry_backoff_s
        await asyncio.sleep(backoff)  # tenacity's first attempt does not wait; the first retry should
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts - 1),
            # backoff * 2^n plus up to one backoff of jitter, so replicas that failed together are not hit together
            wait=wait_exponential_jitter(multiplier=backoff, jitter=backoff, max=2.0),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    upstream = order[attempt.retry_state.attempt_number % len(order)]
                    if upstream is not order[(attempt.retry_state.attempt_number - 1) % len(order)]:
                        self._metrics.upstream_failovers.labels(model.name).inc()
                    try:
                        return await self._attempt(model, upstream, path, body, headers)
                    except _Retryable as again:
                        failure = again
                        if attempt.retry_state.attempt_number < attempts - 1:
                            self._metrics.upstream_retries.labels(model.name, again.kind).inc()
                        raise
        except _Retryable:
            raise failure.final from None
        raise failure.final  # unreachable: AsyncRetrying either returns or re-raises

    async def fetch(self, model: ServedModel, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """POST and read the whole (non-streamed) answer; 504 if it goes silent, 502 if it breaks off.

        Nothing reaches the client before the whole answer is read, so an answer that breaks off (a replica
        dying mid-answer) is asked for once more, from another replica when the model has one.
        A complete read returns the connection to the pool; an abandoned one (an error, or the caller
        cancelled because its client left) drops it, so vLLM aborts the request.
        """
        try:
            return await self._read_all(model, await self.open_response(model, path, body, headers))
        except _BrokenOff as broken:
            if self._settings.retry_attempts < 2:
                raise broken.final from None
            self._metrics.upstream_retries.labels(model.name, "broken_off").inc()
            failed = broken.upstream
        try:
            return await self._read_all(model, await self.open_response(model, path, body, headers, avoid=failed))
        except _BrokenOff as broken:
            raise broken.final from None

    async def _read_all(self, model: ServedModel, response: aiohttp.ClientResponse) -> bytes:
        errors = self._metrics.upstream_errors
        upstream = _upstream_of(response)
        try:
            return await read_capped(response, model=model.name, limit=self._settings.max_upstream_answer_bytes)
        except UpstreamProtocolError:
            errors.labels(model.name, "invalid_response").inc()
            raise
        except (aiohttp.SocketTimeoutError, TimeoutError) as exc:
            errors.labels(model.name, "timeout").inc()
            self._record_failure(model, upstream)
            raise UpstreamTimeout(f"model {model.name}: the upstream went silent mid-answer") from exc
        except aiohttp.ClientError as exc:
            errors.labels(model.name, "invalid_response").inc()
            self._record_failure(model, upstream)
            message = f"model {model.name}: the answer broke off ({type(exc).__name__})"
            raise _BrokenOff(UpstreamProtocolError(message), upstream) from exc
        finally:
            if not response.content.at_eof():
                response.close()

    async def _attempt(
        self, model: ServedModel, upstream: Upstream, path: str, body: bytes, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        url = upstream.base_url + path
        request_headers = {**headers, **upstream.auth_headers()} if upstream.api_key else headers
        errors = self._metrics.upstream_errors
        upstream.outstanding += 1  # before the await, so requests choosing meanwhile see it
        try:
            response = await self._session.post(url, data=_payload(body), headers=request_headers)
        except BaseException as exc:
            pool_was_full = upstream.outstanding > self._settings.max_connections_per_upstream
            upstream.outstanding -= 1
            if isinstance(exc, aiohttp.ConnectionTimeoutError) and pool_was_full:
                # The wait was for one of the gateway's own pooled connections, not for the replica: it is not
                # the replica's failure, and waiting again for the same pool would only double the wait.
                errors.labels(model.name, "pool_full").inc()
                limit = self._settings.max_connections_per_upstream
                full = UpstreamUnavailable(
                    f"model {model.name}: all {limit} connections to one of its upstreams are busy "
                    "(GATEWAY_MAX_CONNECTIONS_PER_UPSTREAM)"
                )
                if len(model.upstreams) > 1:
                    raise _Retryable("pool_full", full) from exc
                raise full from exc
            if isinstance(exc, aiohttp.ClientError | TimeoutError):
                self._record_failure(model, upstream)
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                errors.labels(model.name, "connect").inc()
                raise _Retryable("connect", UpstreamTimeout(f"model {model.name}: connecting timed out")) from exc
            if isinstance(exc, TimeoutError | aiohttp.SocketTimeoutError):
                # The upstream accepted the request and went silent: it may be working on it, so no retry.
                errors.labels(model.name, "timeout").inc()
                timeout = self._settings.read_timeout_s
                raise UpstreamTimeout(f"model {model.name}: no answer within {timeout:g} s") from exc
            if isinstance(exc, aiohttp.ClientError):
                # Refused, reset, or closed before answering (a stale keep-alive connection, a crashed server).
                errors.labels(model.name, "connect").inc()
                raise _Retryable(
                    "connect",
                    UpstreamUnavailable(f"model {model.name}: upstream unreachable ({type(exc).__name__})"),
                ) from exc
            raise  # cancelled: the client left or the gateway is stopping
        assert isinstance(response, _TrackedResponse)
        response.track(upstream.request_finished)
        response.upstream = upstream
        if response.status < 500:
            upstream.breaker.record_success()  # a 4xx is the request's fault, not the replica's
        else:
            self._record_failure(model, upstream)
        if response.status < 400:
            return response
        error = await self._read_error(model, response)
        if response.status in _RETRYABLE_STATUS:
            raise _Retryable(f"status_{response.status}", error)
        raise error

    def _record_failure(self, model: ServedModel, upstream: Upstream | None) -> None:
        if upstream is None or not upstream.breaker.record_failure():
            return
        self._metrics.upstream_ejections.labels(model.name, upstream.base_url).inc()
        log.warning(
            "upstream %s of %s ejected after %d failures in a row; /health probes will readmit it",
            upstream.base_url,
            model.name,
            upstream.breaker.consecutive_failures,
        )

    async def _read_error(self, model: ServedModel, response: aiohttp.ClientResponse) -> GatewayError:
        kind = "status_4xx" if response.status < 500 else "status_5xx"
        self._metrics.upstream_errors.labels(model.name, kind).inc()
        try:
            body = await read_capped(response, model=model.name, limit=_ERROR_BODY_BYTES)
        except (TimeoutError, aiohttp.ClientError, UpstreamProtocolError):
            body = b""
        finally:
            if response.content.at_eof():
                response.release()
            else:  # an error body left unread (too large, broken): the connection cannot be reused
                response.close()
        return parse_upstream_error(response.status, body)
