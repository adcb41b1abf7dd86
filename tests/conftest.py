"""Shared fixtures: vLLM stand-ins on loopback ports and the real gateway in front of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway.settings import Settings
from launchers.vllm_standin import StandinConfig, StandinServer
from tests.running_gateway import GatewayServer

CHAT_MODEL = "qwen3-vl-2b"
OCR_MODEL = "dots-ocr"


@pytest.fixture
def make_standin() -> Iterator[Callable[..., StandinServer]]:
    """Start stand-ins serving a model name with StandinConfig options; all are stopped after the test."""
    started: list[StandinServer] = []

    def start(model: str = CHAT_MODEL, **options: Any) -> StandinServer:
        server = StandinServer(StandinConfig(models=(model,), **options)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def gateway_settings(upstreams: dict[str, list[str]], **overrides: Any) -> Settings:
    """Settings for a test gateway: only the given models, fast health probes, short timeouts."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "models": list(upstreams),
        "upstreams": upstreams,
        "health_interval_s": 0.2,
        "health_timeout_s": 1.0,
        "read_timeout_s": 5.0,
        "retry_backoff_s": 0.01,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., GatewayServer]]:
    """Start gateways in front of the given upstreams; ready (every upstream healthy) unless told not to wait.

    Each gateway gets a store of its own in a temporary directory unless `store_path` is given.
    """
    started: list[GatewayServer] = []

    def start(upstreams: dict[str, list[str]], *, wait_ready: bool = True, **overrides: Any) -> GatewayServer:
        overrides.setdefault("store_path", tmp_path_factory.mktemp("store") / "gateway-store.sqlite3")
        server = GatewayServer(gateway_settings(upstreams, **overrides)).start()
        started.append(server)
        if wait_ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def standin(make_standin: Callable[..., StandinServer]) -> StandinServer:
    """One stand-in serving the chat model, zero latency."""
    return make_standin(CHAT_MODEL)


@pytest.fixture
def gateway(make_gateway: Callable[..., GatewayServer], standin: StandinServer) -> GatewayServer:
    """A ready gateway whose only model is the chat model, served by `standin`."""
    return make_gateway({CHAT_MODEL: [standin.base_url]})
