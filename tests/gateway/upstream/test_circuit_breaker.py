"""The circuit breaker's state machine: open after N failures in a row, half-open after a later probe."""

from __future__ import annotations

import time

from gateway.upstream.circuit_breaker import CircuitBreaker


def test_it_opens_after_threshold_failures_in_a_row() -> None:
    breaker = CircuitBreaker(threshold=3)
    assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
    assert breaker.state == "open"
    assert not breaker.allows_traffic


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert not breaker.record_failure()
    assert not breaker.record_failure()
    assert breaker.allows_traffic


def test_failures_while_open_do_not_open_it_again() -> None:
    breaker = CircuitBreaker(threshold=1)
    assert breaker.record_failure()
    assert not breaker.record_failure()  # counted once as an ejection


def test_only_a_probe_started_after_opening_readmits() -> None:
    breaker = CircuitBreaker(threshold=1)
    probe_started_before = time.monotonic()
    breaker.record_failure()
    assert not breaker.probe_succeeded(probe_started_before)
    assert breaker.state == "open"
    assert breaker.probe_succeeded(time.monotonic())
    assert breaker.state == "half_open"
    assert breaker.allows_traffic


def test_half_open_fails_back_open_on_one_failure() -> None:
    breaker = CircuitBreaker(threshold=5)
    for _ in range(5):
        breaker.record_failure()
    breaker.probe_succeeded(time.monotonic())
    assert breaker.record_failure()  # one chance, not five
    assert breaker.state == "open"


def test_half_open_closes_on_success() -> None:
    breaker = CircuitBreaker(threshold=1)
    breaker.record_failure()
    breaker.probe_succeeded(time.monotonic())
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0


def test_a_probe_of_a_closed_breaker_changes_nothing() -> None:
    breaker = CircuitBreaker(threshold=2)
    breaker.record_failure()
    assert not breaker.probe_succeeded(time.monotonic())
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 1
