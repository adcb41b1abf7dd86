"""UpstreamClient.fetch against a raw loopback server that misbehaves after its headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.errors import UpstreamProtocolError, UpstreamTimeout
from gateway.models.registry import load_registry
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import PROJECT_ROOT, Settings
from gateway.upstream.client import UpstreamClient
from gateway.upstream.served_models import ServedModel, build_served_models

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Handler], Awaitable[ServedModel]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)


async def _cut_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(HEADERS + b'{"choices": [')  # 100 bytes promised, 13 sent, then the server dies
    await writer.drain()
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(HEADERS + b'{"choices": [')
    await writer.drain()
    await asyncio.sleep(5)  # the fixture closes the connection before this ends


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []
    connections: list[tuple[asyncio.Task[None], asyncio.StreamWriter]] = []

    async def start(*handlers: Handler) -> ServedModel:
        """One replica of dots-ocr per handler, in order."""
        urls = []
        for handler in handlers:

            async def tracked(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler = handler
            ) -> None:
                task = asyncio.current_task()
                assert task is not None
                connections.append((task, writer))
                await handler(reader, writer)

            server = await asyncio.start_server(tracked, "127.0.0.1", 0)
            servers.append(server)
            urls.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
        registry = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
        settings = Settings(models=["dots-ocr"], upstreams={"dots-ocr": urls})
        return build_served_models(registry, settings)["dots-ocr"]

    yield start
    # Every connection is ended inside the test's loop: a writer left to the garbage collector warns later.
    for task, writer in connections:
        task.cancel()
        writer.close()
    await asyncio.gather(*(task for task, _ in connections), return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("handler", "error", "kind"),
    [(_cut_off, UpstreamProtocolError, "invalid_response"), (_silent, UpstreamTimeout, "timeout")],
)
async def test_an_answer_that_breaks_off_or_goes_silent_is_a_gateway_error(
    serve: Serve, handler: Handler, error: type[Exception], kind: str
) -> None:
    model = await serve(handler)
    metrics = GatewayMetrics()
    client = UpstreamClient(Settings(read_timeout_s=0.3, retry_attempts=1), metrics)
    await client.start()
    try:
        with pytest.raises(error):
            await client.fetch(model, "/chat/completions", b"{}", {"Content-Type": "application/json"})
    finally:
        await client.close()
    exposition = metrics.render().decode()
    assert f'gateway_upstream_errors_total{{kind="{kind}",model="dots-ocr"}} 1.0' in exposition


async def _answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = b'{"choices": []}'
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    writer.write(body)
    await writer.drain()


async def test_an_answer_that_breaks_off_is_asked_for_again_elsewhere(serve: Serve) -> None:
    # Nothing reached the client yet, so a replica dying mid-answer costs it nothing but time.
    model = await serve(_cut_off, _answers)
    model.upstreams[0].healthy = model.upstreams[1].healthy = True
    model.upstreams[1].outstanding = 1  # so the first choice is the replica that breaks off
    metrics = GatewayMetrics()
    client = UpstreamClient(Settings(retry_attempts=3), metrics)
    await client.start()
    try:
        answer = await client.fetch(model, "/chat/completions", b"{}", {"Content-Type": "application/json"})
    finally:
        await client.close()
    assert answer == b'{"choices": []}'
    assert model.upstreams[0].breaker.consecutive_failures == 1
    assert [upstream.outstanding for upstream in model.upstreams] == [0, 1]  # nothing leaked
    exposition = metrics.render().decode()
    assert 'gateway_upstream_retries_total{kind="broken_off",model="dots-ocr"} 1.0' in exposition


async def test_an_answer_is_asked_for_at_most_twice(serve: Serve) -> None:
    requests = 0

    async def counting_cut_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        await _cut_off(reader, writer)

    model = await serve(counting_cut_off)
    client = UpstreamClient(Settings(retry_attempts=3), GatewayMetrics())
    await client.start()
    try:
        with pytest.raises(UpstreamProtocolError, match="broke off"):
            await client.fetch(model, "/chat/completions", b"{}", {"Content-Type": "application/json"})
    finally:
        await client.close()
    assert requests == 2
    assert model.upstreams[0].outstanding == 0
