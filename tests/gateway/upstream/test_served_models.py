"""Which replica a request tries first: least loaded among the available, ties in turn, the unavailable last."""

from __future__ import annotations

import time
from collections import Counter

from gateway.models.registry import load_registry
from gateway.settings import Settings
from gateway.upstream.circuit_breaker import CircuitBreaker
from gateway.upstream.served_models import ServedModel, Upstream


def _model(*upstreams: Upstream) -> ServedModel:
    settings = Settings()
    config = load_registry(settings.model_configs_dir, settings.prompts_dir)["qwen3-vl-2b"]
    return ServedModel(config, upstreams)


def _replica(name: str, **state: object) -> Upstream:
    upstream = Upstream(f"http://{name}:8000/v1", healthy=True, breaker=CircuitBreaker(threshold=3))
    for field, value in state.items():
        setattr(upstream, field, value)
    return upstream


def test_idle_replicas_take_turns() -> None:
    a, b, c = _replica("a"), _replica("b"), _replica("c")
    model = _model(a, b, c)
    firsts = Counter(model.attempt_order()[0].base_url for _ in range(300))
    assert set(firsts.values()) == {100}


def test_fewest_outstanding_requests_first() -> None:
    a, b = _replica("a", outstanding=3), _replica("b", outstanding=1)
    model = _model(a, b)
    assert all(model.attempt_order() == [b, a] for _ in range(10))


def test_vllm_queue_counts_with_outstanding_requests() -> None:
    # b has fewer of this gateway's requests but a queue other clients built: a is the better choice.
    a, b = _replica("a", outstanding=2), _replica("b", outstanding=0, queue_waiting=5.0)
    model = _model(a, b)
    assert all(model.attempt_order()[0] is a for _ in range(10))


def test_ejected_and_unhealthy_replicas_come_last_even_when_idle() -> None:
    ejected = _replica("ejected")
    for _ in range(3):
        ejected.breaker.record_failure()
    down = _replica("down", healthy=False)
    busy = _replica("busy", outstanding=50)
    model = _model(ejected, down, busy)
    for _ in range(10):
        order = model.attempt_order()
        assert order[0] is busy
        assert {id(u) for u in order[1:]} == {id(ejected), id(down)}


def test_healthy_before_unprobed() -> None:
    unprobed = _replica("unprobed", healthy=None)
    healthy = _replica("healthy", outstanding=1)
    model = _model(unprobed, healthy)
    assert all(model.attempt_order()[0] is healthy for _ in range(10))


def test_a_readmitted_replica_gets_traffic_again() -> None:
    a, b = _replica("a"), _replica("b", outstanding=1)
    for _ in range(3):
        a.breaker.record_failure()
    model = _model(a, b)
    assert model.attempt_order()[0] is b
    a.breaker.probe_succeeded(time.monotonic())
    assert model.attempt_order()[0] is a
