"""The health prober, against respx-mocked upstreams (the control plane runs on httpx)."""

import asyncio

import httpx
import pytest
import respx

from gateway.models.registry import load_registry
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import PROJECT_ROOT, Settings
from gateway.upstream.health_probe import HealthProber
from gateway.upstream.served_models import ServedModel, build_served_models

REGISTRY = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")
URLS = ["http://gpu-a:8000/v1", "http://gpu-b:8000/v1"]


def _model() -> ServedModel:
    return build_served_models(REGISTRY, Settings(models=["dots-ocr"], upstreams={"dots-ocr": URLS}))["dots-ocr"]


def _models_body(name: str, max_model_len: int) -> dict[str, object]:
    card = {
        "id": name,
        "object": "model",
        "owned_by": "vllm",
        "root": "rednote-hilab/dots.ocr",
        "parent": None,
        "max_model_len": max_model_len,
        "permission": [],
    }
    return {"object": "list", "data": [card]}


async def test_healthy_upstream_reports_its_max_model_len() -> None:
    model, metrics = _model(), GatewayMetrics()
    prober = HealthProber({"dots-ocr": model}, metrics, interval_s=60, timeout_s=1)
    with respx.mock(assert_all_called=True) as mock:
        mock.get("http://gpu-a:8000/health").respond(200)
        mock.get("http://gpu-a:8000/v1/models").respond(200, json=_models_body("dots-ocr", 32768))
        mock.get("http://gpu-b:8000/health").respond(503)
        await prober.probe_all()
    await prober.close()
    first, second = model.upstreams
    assert (first.healthy, first.max_model_len, first.last_error) == (True, 32768, None)
    assert (second.healthy, second.max_model_len) == (False, None)
    assert second.last_error == "/health answered HTTP 503"
    assert model.ready
    assert model.max_model_len == 32768
    exposition = metrics.render().decode()
    assert 'gateway_upstream_healthy{model="dots-ocr",upstream="http://gpu-a:8000/v1"} 1.0' in exposition
    assert 'gateway_upstream_healthy{model="dots-ocr",upstream="http://gpu-b:8000/v1"} 0.0' in exposition


@pytest.mark.parametrize(
    ("side_effect", "error"),
    [
        (httpx.ConnectError("refused"), "/health unreachable (ConnectError)"),
        (httpx.ReadTimeout("slow"), "/health timed out"),
    ],
)
async def test_unreachable_upstreams_are_unhealthy(side_effect: Exception, error: str) -> None:
    model = _model()
    prober = HealthProber({"dots-ocr": model}, GatewayMetrics(), interval_s=60, timeout_s=1)
    with respx.mock as mock:
        mock.get(url__startswith="http://gpu-").mock(side_effect=side_effect)
        await prober.probe_all()
    await prober.close()
    assert not model.ready
    assert [u.last_error for u in model.upstreams] == [error, error]


async def test_a_model_list_without_this_model_leaves_max_model_len_unknown() -> None:
    model = _model()
    prober = HealthProber({"dots-ocr": model}, GatewayMetrics(), interval_s=60, timeout_s=1)
    with respx.mock as mock:
        mock.get(url__regex=r"http://gpu-.:8000/health").respond(200)
        mock.get(url__regex=r"http://gpu-.:8000/v1/models").respond(200, json=_models_body("someone-else", 4096))
        await prober.probe_all()
    await prober.close()
    assert model.ready
    assert model.max_model_len is None


async def test_upstream_key_is_sent_when_listing_models() -> None:
    model = _model()
    model.upstreams[0].api_key = "sk-up"
    prober = HealthProber({"dots-ocr": model}, GatewayMetrics(), interval_s=60, timeout_s=1)
    with respx.mock as mock:
        mock.get(url__regex=r"http://gpu-.:8000/health").respond(200)
        models_route = mock.get("http://gpu-a:8000/v1/models").respond(200, json=_models_body("dots-ocr", 1))
        mock.get("http://gpu-b:8000/v1/models").respond(200, json=_models_body("dots-ocr", 1))
        await prober.probe_all()
    await prober.close()
    assert models_route.calls.last.request.headers["authorization"] == "Bearer sk-up"


async def test_a_slow_health_answer_from_a_busy_replica_keeps_it_healthy() -> None:
    model, metrics = _model(), GatewayMetrics()
    busy, idle = model.upstreams
    busy.healthy = idle.healthy = True
    busy.outstanding = 3  # this gateway's requests it is working on
    prober = HealthProber({"dots-ocr": model}, metrics, interval_s=60, timeout_s=1)
    with respx.mock(assert_all_called=True) as mock:
        mock.get("http://gpu-a:8000/health").mock(side_effect=httpx.ReadTimeout("slow"))
        mock.get("http://gpu-b:8000/health").mock(side_effect=httpx.ReadTimeout("slow"))
        await prober.probe_all()
    await prober.close()
    assert busy.healthy is True
    assert busy.last_error == "/health slow while 3 request(s) are in flight"
    assert idle.healthy is False  # nothing in flight: a silent replica is down
    assert idle.last_error == "/health timed out"


async def test_a_busy_replica_that_was_already_down_stays_down() -> None:
    model, metrics = _model(), GatewayMetrics()
    replica = model.upstreams[0]
    replica.healthy, replica.outstanding = False, 2
    prober = HealthProber({"dots-ocr": model}, metrics, interval_s=60, timeout_s=1)
    with respx.mock(assert_all_called=True) as mock:
        mock.get("http://gpu-a:8000/health").mock(side_effect=httpx.ReadTimeout("slow"))
        await prober.probe(model, replica)
    await prober.close()
    assert replica.healthy is False


async def test_closing_lets_the_round_under_way_finish_instead_of_cancelling_it() -> None:
    """A probe cancelled inside httpx's connection handling could leave its socket open: close() waits."""
    model = _model()
    started, release = asyncio.Event(), asyncio.Event()
    answered: list[str] = []

    async def slow_health(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        answered.append(str(request.url))
        return httpx.Response(503)

    transport = httpx.MockTransport(slow_health)
    prober = HealthProber({"dots-ocr": model}, GatewayMetrics(), interval_s=60, timeout_s=5, transport=transport)
    prober.start()
    await started.wait()
    closing = asyncio.create_task(prober.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # waiting for the round, not cancelling it
    release.set()
    async with asyncio.timeout(5):
        await closing
    assert sorted(answered) == ["http://gpu-a:8000/health", "http://gpu-b:8000/health"]


async def test_a_round_that_hangs_past_its_timeouts_is_cancelled_at_close() -> None:
    model = _model()

    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    transport = httpx.MockTransport(never)  # ignores the client's timeout: only close() can end it
    prober = HealthProber({"dots-ocr": model}, GatewayMetrics(), interval_s=60, timeout_s=0.1, transport=transport)
    prober.start()
    await asyncio.sleep(0.05)
    async with asyncio.timeout(5):
        await prober.close()  # 2 x 0.1 s + 1 s, then cancelled
