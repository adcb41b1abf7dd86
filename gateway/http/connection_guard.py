"""Limits on what a connection may cost before its request reaches the app, in uvicorn's httptools protocol.

uvicorn with httptools bounds none of it: a 16 MB header was read whole (100 MB cost 11 s of event-loop CPU),
and a connection that never finishes its request (idle, dribbling headers, stalling its body) stayed open
forever, until ~21,000 of them ran the process out of file descriptors. `--limit-concurrency` does not help:
it answers 503 per request but keeps accepting connections. So the protocol itself is guarded here:

- the request head (request line and headers) may hold at most `max_header_bytes` bytes and `max_headers`
  headers (nginx and Node allow 8 to 64 KiB and ~100); more is a 431, and reading stops at the first chunk that
  passes the limit (the transport reads at most 256 KiB at a time), so a huge header costs nothing;
- the head must be complete within `header_timeout_s` of the connection opening or of its first byte (a
  fixed deadline: dribbling a byte at a time does not extend it); a body must keep arriving, with no silence
  longer than `body_timeout_s` (not a total: a large upload on a slow link is fine). Either: 408, closed;
- at most `max_connections` connections at once: one more is answered 503 and closed as soon as it is
  accepted, so its descriptor is freed at once instead of held.

Refusals are OpenAI-shaped, counted in `gateway_connections_refused_total{reason}` and logged at most once per
`_LOG_EVERY_S` per reason (with how many since). An idle keep-alive connection between requests is uvicorn's
own `timeout_keep_alive` (5 s).

The common request costs nothing more than a few attribute updates and one look at its header count and size:
a head and body that arrive in one read arm no timer. Timers are armed only when a read ends mid-request, one
per connection at a time, and a timer that fires re-reads the state rather than being cancelled on progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import ClientTooSlow, GatewayError, HeadersTooLarge, TooManyConnections
from gateway.http.error_handlers import raw_error_response
from gateway.observability.metrics import GatewayMetrics

log = logging.getLogger(__name__)

_LOG_EVERY_S = 10.0
# After a 431 or 408 the connection lingers this long, reading and dropping what the client still sends, before
# it closes (nginx's lingering close): closing with unread bytes makes the kernel send a reset, and the client
# would see "connection reset" instead of the answer. The answer is followed by a FIN, so a client that reads it
# closes first; this bounds the rest.
_LINGER_S = 2.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int


class _ShedLog:
    """One warning per reason per `_LOG_EVERY_S`, saying how many were refused since: an attack must not flood
    the log, and an operator must still see that load is being shed."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def refused(self, reason: str, detail: str) -> None:
        self._metrics.connections_refused.labels(reason).inc()
        self._since[reason] = self._since.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last.get(reason, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            count = self._since.pop(reason)
            self._last[reason] = now
            log.warning("connection refused (%s): %s; %d in the last %g s", reason, detail, count, _LOG_EVERY_S)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that is refused."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of the module docstring; build one with `guarded_protocol`."""

    limits: ClassVar[ConnectionLimits]
    shed_log: ClassVar[_ShedLog]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # a fresh connection waits for its first request's head
        self._in_body = False
        self._head_deadline = 0.0
        self._head_bytes = 0  # bytes read while the current head was incomplete (a bound on its size)
        self._reads = 0  # data_received calls: progress, as a timer sees it
        self._reads_seen = 0
        self._timer: asyncio.TimerHandle | None = None
        self._discarding = False  # refused: what still arrives is read and dropped until the linger ends

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limits.max_connections
        if len(self.connections) > limit:
            # Closed at once, without lingering: the point is to give the descriptor back.
            self._refuse(TooManyConnections(f"the gateway holds {limit} connections already; retry shortly"), "", 0)
            return
        self._head_deadline = self.loop.time() + self.limits.header_timeout_s
        self._timer = self.loop.call_at(self._head_deadline, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding or self.transport.is_closing():
            return  # refused already: what the client still sends is dropped unparsed
        self._reads += 1
        if self._in_head:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # httptools wraps what a callback raised
            if isinstance(exc.__context__, _Refused):
                return
            self._invalid_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._invalid_request()
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._too_large(self._head_bytes)
        elif (self._in_head or self._in_body) and self._timer is None:
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # a later request on a kept-alive connection (the first one's started at connect)
            self._in_head = True
            self._head_deadline = self.loop.time() + self.limits.header_timeout_s

    def on_headers_complete(self) -> None:
        limits = self.limits
        if len(self.headers) > limits.max_headers:
            self._refuse(
                HeadersTooLarge(
                    f"the request has {len(self.headers)} headers; this gateway reads {limits.max_headers}"
                ),
                "too_many_headers",
            )
            raise _Refused()
        size = len(self.url)
        for name, value in self.headers:
            size += len(name) + len(value) + 4  # ": " and CRLF, as sent
        if size > limits.max_header_bytes:
            self._too_large(size)
            raise _Refused()
        self._in_head = False
        self._in_body = True
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def _arm(self) -> None:
        self._reads_seen = self._reads
        if self._in_head:
            self._timer = self.loop.call_at(self._head_deadline, self._check)
        else:
            self._timer = self.loop.call_later(self.limits.body_timeout_s, self._check)

    def _check(self) -> None:
        """The timer fired: refuse a head past its deadline or a body silent for a whole period, else re-arm."""
        self._timer = None
        if self._discarding or self.transport.is_closing():
            return
        limits = self.limits
        if self._in_head:
            if self.loop.time() >= self._head_deadline:
                message = f"the request's headers did not arrive within {limits.header_timeout_s:g} s"
                self._refuse(ClientTooSlow(message), "header_timeout")
                return
            self._arm()
        elif self._in_body:
            # Reading paused (the app is not reading yet, or pipelined requests wait): not the client's fault.
            if self._reads == self._reads_seen and not self.flow.read_paused:
                message = f"the request body stopped arriving for {limits.body_timeout_s:g} s"
                self._refuse(ClientTooSlow(message), "body_timeout")
                return
            self._arm()
        # else: the request is being answered, or the connection is between requests (uvicorn's keep-alive).

    def _too_large(self, size: int) -> None:
        limit = self.limits.max_header_bytes
        message = (
            f"the request's headers are larger than this gateway reads ({size:,} bytes or more; at most {limit:,})"
        )
        self._refuse(HeadersTooLarge(message), "headers_too_large")

    def _refuse(self, error: GatewayError, reason: str, linger_s: float = _LINGER_S) -> None:
        """Answer `error` and close (after `linger_s`); its metric reason is `reason`, or the error's code."""
        self._in_head = self._in_body = False
        self.shed_log.refused(reason or str(error.code), error.message)
        transport = self.transport
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                transport.close()  # an answer is under way: nothing clean can be said in its middle
                return
            # The app waits for the body that stalled: it sees a disconnect, and whatever it answers is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        transport.write(raw_error_response(error))
        if linger_s <= 0 or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()  # after the answer: the client reads it, then the end
        self._discarding = True
        self.flow.resume_reading()  # keep reading (and dropping) whatever was paused
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(linger_s, transport.close)

    def _invalid_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)


def guarded_protocol(limits: ConnectionLimits, metrics: GatewayMetrics) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for `uvicorn.Config(http=...)` with these limits (one class per server)."""
    return type("GatewayHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits, "shed_log": _ShedLog(metrics)})
