"""A real Prometheus (Debian's `prometheus` binary) scrapes the running gateway and loads the alert rules."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from launchers.compose import ALERT_RULES
from tests.conftest import CHAT_MODEL
from tests.ports import free_port
from tests.running_gateway import GatewayServer

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (apt-get install prometheus; .ci/run does)"
)
DEADLINE_S = 20.0


@pytest.fixture
def prometheus(gateway: GatewayServer, tmp_path: Path) -> Iterator[str]:
    """Prometheus on a free loopback port, scraping `gateway` every second; yields its base URL."""
    assert PROMETHEUS is not None
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERT_RULES)],
        "scrape_configs": [
            {"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{gateway.port}"]}]},
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _poll(url: str, params: dict[str, str], done: Any, what: str, log: Path) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, params=params, timeout=2)
            if response.status_code == 200:
                last = response.json()["data"]
                if done(last):
                    return last
        except httpx.TransportError as exc:  # not listening yet
            last = exc
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise AssertionError(f"Prometheus never showed {what} within {DEADLINE_S:g} s; last: {last!r}\n{tail}")


def test_prometheus_scrapes_the_gateways_series(gateway: GatewayServer, prometheus: str, tmp_path: Path) -> None:
    for _ in range(3):
        response = httpx.post(
            gateway.base_url + "/chat/completions",
            json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
        assert response.status_code == 200
    log = tmp_path / "prometheus.log"
    data = _poll(
        prometheus + "/api/v1/query",
        {"query": 'gateway_requests_total{route="/v1/chat/completions",status="200"}'},
        lambda data: any(float(s["value"][1]) >= 3 for s in data["result"]),
        "the gateway's chat requests",
        log,
    )
    (series,) = data["result"]
    assert series["metric"]["job"] == "gateway"
    assert series["metric"]["model"] == CHAT_MODEL
    assert series["metric"]["instance"] == f"127.0.0.1:{gateway.port}"
    # The scrape is healthy and the health gauge arrived as well.
    up = _poll(prometheus + "/api/v1/query", {"query": "up"}, lambda d: bool(d["result"]), "up", log)
    assert up["result"][0]["value"][1] == "1"
    healthy = _poll(
        prometheus + "/api/v1/query",
        {"query": "gateway_upstream_healthy"},
        lambda d: bool(d["result"]),
        "the upstream health gauge",
        log,
    )
    assert healthy["result"][0]["value"][1] == "1"
    # The stacks' alert rules load in a real Prometheus, and none fires against a healthy gateway.
    rules = _poll(prometheus + "/api/v1/rules", {}, lambda d: bool(d["groups"]), "the alert rules", log)
    alerts = {rule["name"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert set(alerts) == {
        "UpstreamDown",
        "UpstreamEjectedRepeatedly",
        "HighErrorRatio",
        "HighLatencyP99",
        "QueueBuildingUp",
    }
    assert all(rule["health"] in ("ok", "unknown") for rule in alerts.values())
    assert all(rule["state"] == "inactive" for rule in alerts.values())
