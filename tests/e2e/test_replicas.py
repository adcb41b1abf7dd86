"""Several replicas of one model: load-aware choice, the circuit breaker, failover, and a replica killed under load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL
from tests.ports import free_port
from tests.running_gateway import GatewayServer

HI = [{"role": "user", "content": "hi"}]


def _metric(gateway: GatewayServer, name: str, **labels: str) -> float:
    """One sample's value from the gateway's /metrics (0 when the series does not exist yet)."""
    for family in text_string_to_metric_families(httpx.get(gateway.root_url + "/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _chat_requests(standin: StandinServer) -> int:
    return sum(1 for rec in standin.state.requests if rec.path == "/v1/chat/completions")


def test_a_slow_replica_gets_fewer_requests(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # Round robin would send the slow replica half of the requests; fewest-outstanding sends it one at a time.
    slow, fast = make_standin(CHAT_MODEL, latency_s=1.0), make_standin(CHAT_MODEL)
    gateway = make_gateway({CHAT_MODEL: [slow.base_url, fast.base_url]})

    async def worker(client: openai.AsyncOpenAI) -> None:
        for _ in range(5):
            await client.chat.completions.create(model=CHAT_MODEL, messages=HI)

    async def load() -> None:
        async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client:
            await asyncio.gather(*(worker(client) for _ in range(4)))

    asyncio.run(load())
    assert _chat_requests(slow) + _chat_requests(fast) == 20
    assert _chat_requests(slow) <= 4


def test_a_replica_with_a_vllm_queue_is_avoided(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # Another client has filled `busy`'s batch: its queue shows only in vLLM's metrics, not in the gateway's count.
    busy = make_standin(CHAT_MODEL, max_num_seqs=1, latency_s=2.0)
    idle = make_standin(CHAT_MODEL)
    gateway = make_gateway({CHAT_MODEL: [busy.base_url, idle.base_url]}, load_interval_s=0.1)
    with httpx.Client(timeout=30) as other_client:
        body = {"model": CHAT_MODEL, "messages": HI}
        with _background_posts(other_client, busy.base_url + "/chat/completions", body, count=4):
            deadline = time.monotonic() + 5
            while _metric(gateway, "gateway_upstream_queue_waiting", upstream=busy.base_url) < 3:
                assert time.monotonic() < deadline, "the gateway never saw busy's queue"
                time.sleep(0.05)
            before = _chat_requests(busy)
            with openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client:
                for _ in range(10):
                    client.chat.completions.create(model=CHAT_MODEL, messages=HI)
            assert _chat_requests(busy) == before
            assert _chat_requests(idle) == 10


@contextlib.contextmanager
def _background_posts(client: httpx.Client, url: str, body: dict[str, object], count: int) -> Iterator[None]:
    """POST `count` requests from threads while the block runs; wait for them at its end."""
    threads = [threading.Thread(target=client.post, args=(url,), kwargs={"json": body}) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for thread in threads:
            thread.join(30)


def test_a_failing_replica_is_ejected_and_its_requests_fail_over(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # `broken` answers /health with 200 but every request with 503: only the circuit breaker can catch it.
    broken, good = make_standin(CHAT_MODEL), make_standin(CHAT_MODEL)
    broken.state.faults.update({"fail_next": 1000, "fail_status": 503})
    # Probes far apart, so nothing readmits `broken` during the test.
    gateway = make_gateway({CHAT_MODEL: [broken.base_url, good.base_url]}, health_interval_s=60, eject_after_failures=3)
    with openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client:
        for _ in range(20):
            reply = client.chat.completions.create(model=CHAT_MODEL, messages=HI)
            assert reply.choices[0].message.content
    assert _chat_requests(broken) == 3  # then ejected: no request reached it again
    assert _chat_requests(good) == 20
    assert _metric(gateway, "gateway_upstream_ejections_total", upstream=broken.base_url) == 1
    assert _metric(gateway, "gateway_upstream_ejected", upstream=broken.base_url) == 1
    assert _metric(gateway, "gateway_upstream_failovers_total", model=CHAT_MODEL) == 3
    assert _metric(gateway, "gateway_upstream_breaker_state", upstream=good.base_url, state="closed") == 1


def test_an_ejected_replica_is_readmitted_by_a_health_probe(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    broken, good = make_standin(CHAT_MODEL), make_standin(CHAT_MODEL)
    gateway = make_gateway({CHAT_MODEL: [broken.base_url, good.base_url]}, eject_after_failures=2)
    broken.state.faults.update({"fail_next": 2, "fail_status": 502})
    with openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client:
        for _ in range(4):  # equal loads take turns: within four requests `broken` gets two
            client.chat.completions.create(model=CHAT_MODEL, messages=HI)
        assert _metric(gateway, "gateway_upstream_ejections_total", upstream=broken.base_url) == 1
        deadline = time.monotonic() + 5  # probes every 0.2 s in tests
        while _metric(gateway, "gateway_upstream_readmissions_total", upstream=broken.base_url) < 1:
            assert time.monotonic() < deadline, "the ejected replica was never readmitted"
            time.sleep(0.05)
        before = _chat_requests(broken)
        for _ in range(6):
            client.chat.completions.create(model=CHAT_MODEL, messages=HI)
    assert _chat_requests(broken) > before  # back in rotation (and its successes closed the breaker)
    assert _metric(gateway, "gateway_upstream_breaker_state", upstream=broken.base_url, state="closed") == 1


def test_outstanding_requests_return_to_zero_however_requests_end(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # A count that leaked on any of these paths would slowly starve a replica of traffic.
    a = make_standin(CHAT_MODEL, reply=" ".join(["word"] * 30), tokens_per_s=30)
    b = make_standin(CHAT_MODEL, reply=" ".join(["word"] * 30), tokens_per_s=30)
    gateway = make_gateway({CHAT_MODEL: [a.base_url, b.base_url]})
    url = gateway.base_url + "/chat/completions"
    for replica in (a, b):
        replica.state.faults.update({"fail_next": 1, "fail_status": 400})  # an upstream 4xx
    for _ in range(2):
        assert httpx.post(url, json={"model": CHAT_MODEL, "messages": HI}, timeout=10).status_code == 400
    for _ in range(2):
        assert httpx.post(url, json={"model": CHAT_MODEL, "messages": HI}, timeout=10).status_code == 200
        with httpx.stream("POST", url, json={"model": CHAT_MODEL, "messages": HI, "stream": True}) as full:
            assert full.read().endswith(b"data: [DONE]\n\n")
        with httpx.stream("POST", url, json={"model": CHAT_MODEL, "messages": HI, "stream": True}) as left:
            next(left.iter_raw())  # leave mid-stream
    a.state.faults.update({"stream_cut_after": 2})  # the upstream breaks off mid-stream
    b.state.faults.update({"stream_cut_after": 2})
    with httpx.stream("POST", url, json={"model": CHAT_MODEL, "messages": HI, "stream": True}) as cut:
        cut.read()
    replicas = gateway.state.models[CHAT_MODEL].upstreams
    deadline = time.monotonic() + 5
    while any(replica.outstanding for replica in replicas):
        assert time.monotonic() < deadline, [replica.outstanding for replica in replicas]
        time.sleep(0.05)


def test_per_replica_gauges_are_exported(gateway: GatewayServer, standin: StandinServer) -> None:
    text = httpx.get(gateway.root_url + "/metrics").text
    for line in (
        f'gateway_upstream_outstanding_requests{{model="{CHAT_MODEL}",upstream="{standin.base_url}"}} 0.0',
        f'gateway_upstream_ejected{{model="{CHAT_MODEL}",upstream="{standin.base_url}"}} 0.0',
        "# TYPE gateway_upstream_failovers_total counter",
        "# TYPE gateway_upstream_ejections_total counter",
    ):
        assert line in text, line


# --- a replica killed under load: real processes, so the kill is a kill -9 --------------------------------


@pytest.fixture
def standin_processes() -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    """Start stand-ins as separate processes (`python -m launchers.vllm_standin`); all killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "launchers.vllm_standin", "--port", str(port), "--model", CHAT_MODEL, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(root + "/health").status_code == 200:
                    return process, root + "/v1"
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the stand-in exited"
            assert time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.05)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_killing_one_of_two_replicas_under_load_fails_no_request(
    standin_processes: Callable[..., tuple[subprocess.Popen[bytes], str]],
    make_gateway: Callable[..., GatewayServer],
) -> None:
    victim, victim_url = standin_processes("--latency-ms", "50")
    _, survivor_url = standin_processes("--latency-ms", "50")
    gateway = make_gateway({CHAT_MODEL: [victim_url, survivor_url]})
    victim_replica = gateway.state.models[CHAT_MODEL].upstreams[0]
    failures: list[BaseException] = []
    answered = 0

    async def worker(client: openai.AsyncOpenAI, stop: asyncio.Event) -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                reply = await client.chat.completions.create(model=CHAT_MODEL, messages=HI)
                assert reply.choices[0].message.content
                answered += 1
            except Exception as exc:  # every failure is collected and fails the test below
                failures.append(exc)

    async def load() -> None:
        stop = asyncio.Event()
        async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=20) as client:
            workers = [asyncio.create_task(worker(client, stop)) for _ in range(8)]
            await asyncio.sleep(1.0)
            # Kill while the gateway has requests in flight on the victim, so some break mid-request.
            deadline = time.monotonic() + 5
            while victim_replica.outstanding == 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - gateway state, no event
                await asyncio.sleep(0.001)
            os.kill(victim.pid, signal.SIGKILL)
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.gather(*workers)

    asyncio.run(load())
    assert failures == []
    assert answered > 50
    assert victim.wait(5) == -signal.SIGKILL
    # Whichever came first, the breaker or the health probe, the dead replica is out of rotation.
    assert not victim_replica.available


def test_a_full_connection_pool_is_a_503_and_not_the_replicas_fault(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    # One pooled connection, held by a slow request: the next request waits for the pool, not for the replica.
    slow = make_standin(CHAT_MODEL, latency_s=3.0)
    gateway = make_gateway(
        {CHAT_MODEL: [slow.base_url]}, max_connections_per_upstream=1, pool_timeout_s=0.3, eject_after_failures=1
    )
    with httpx.Client(timeout=10) as client:
        body = {"model": CHAT_MODEL, "messages": HI}
        with _background_posts(client, gateway.base_url + "/chat/completions", body, count=1):
            assert slow.state.wait_for(lambda: slow.state.running == 1, timeout=5)
            started = time.monotonic()
            response = client.post(gateway.base_url + "/chat/completions", json=body)
            assert time.monotonic() - started < 2.5  # one pool wait, not one per retry attempt
            assert response.status_code == 503
            assert "connections" in response.json()["error"]["message"]
    replica = gateway.state.models[CHAT_MODEL].upstreams[0]
    assert replica.breaker.state == "closed"
    assert _metric(gateway, "gateway_upstream_ejections_total") == 0
    assert _metric(gateway, "gateway_upstream_errors_total", kind="pool_full") == 1
