"""The sliding window arithmetic, the in-process limiter, the headers, and loading keys."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from gateway.errors import RateLimited
from gateway.models.registry import ConfigError
from gateway.security.auth import KeyRing, load_key_ring
from gateway.security.rate_limit import KeyPolicy, MemoryLimiter, format_duration, slide
from gateway.settings import Settings


def test_the_window_lets_limit_requests_in_then_says_when_the_oldest_leaves() -> None:
    log: deque[float] = deque()
    assert slide(log, 0.0, 3) == (True, 1, 60.0)
    assert slide(log, 10.0, 3) == (True, 2, 50.0)
    assert slide(log, 20.0, 3) == (True, 3, 40.0)
    assert slide(log, 30.0, 3) == (False, 3, 30.0)  # refused, and not counted
    assert list(log) == [0.0, 10.0, 20.0]


def test_the_window_slides_rather_than_resetting_at_a_boundary() -> None:
    log: deque[float] = deque()
    for t in (50.0, 55.0, 59.0):
        assert slide(log, t, 3)[0]
    # A fixed window would start afresh at t=60 and let 3 more through; the sliding one waits for t=50 + 60.
    assert slide(log, 61.0, 3) == (False, 3, 49.0)
    assert slide(log, 110.0, 3) == (True, 3, 5.0)  # the request at 50 left exactly at 110
    assert list(log) == [55.0, 59.0, 110.0]


async def test_memory_limiter_counts_requests_and_slots_per_key() -> None:
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    a = KeyPolicy("a", requests_per_minute=2, max_concurrency=1)
    b = KeyPolicy("b", requests_per_minute=0, max_concurrency=0)  # unlimited
    first = await limiter.acquire(a)
    assert dict(first.headers) == {
        b"x-ratelimit-limit-requests": b"2",
        b"x-ratelimit-remaining-requests": b"1",
        b"x-ratelimit-reset-requests": b"1m0s",
    }
    with pytest.raises(RateLimited) as busy:
        await limiter.acquire(a)
    assert busy.value.code == "concurrency_limit_exceeded"
    assert busy.value.headers is not None
    assert busy.value.headers["Retry-After"] == "1"
    await limiter.release(first)
    await limiter.release(first)  # idempotent: a slot is given back once
    assert limiter.in_flight("a") == 0
    now[0] = 15.5
    second = await limiter.acquire(a)
    await limiter.release(second)
    with pytest.raises(RateLimited) as over:
        await limiter.acquire(a)
    assert over.value.code == "rate_limit_exceeded"
    assert over.value.status_code == 429
    assert over.value.error_type == "rate_limit_error"
    assert over.value.headers == {
        "Retry-After": "45",  # the request at t=0 leaves the window at t=60
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "45s",
    }
    for _ in range(100):
        assert (await limiter.acquire(b)).headers == []  # another key is not affected; no limit, no headers
    now[0] = 60.0
    assert (await limiter.acquire(a)).headers[1] == (b"x-ratelimit-remaining-requests", b"0")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0, "0ms"), (0.2501, "251ms"), (1.0, "1s"), (12.2, "13s"), (60.0, "1m0s"), (61, "1m1s")]
)
def test_durations_are_written_like_openai(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_key_is_found_by_its_digest_and_a_wrong_one_is_not() -> None:
    ring = load_key_ring(Settings(api_keys="sk-one, sk-two", default_rpm=7, default_max_concurrency=0))  # type: ignore[arg-type]
    assert isinstance(ring, KeyRing)
    assert len(ring) == 2
    assert ring.find(b"sk-two") == KeyPolicy("key-2", 7, 0)
    for wrong in (b"sk-tw", b"sk-two ", b"", b"sk-one" * 100):
        assert ring.find(wrong) is None


def test_no_keys_means_no_key_ring() -> None:
    assert load_key_ring(Settings()) is None


def test_the_keys_file_sets_names_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "- {name: team-a, key: sk-aaaa, requests_per_minute: 5}\n- {name: team-b, key: sk-bbbb, max_concurrency: 2}\n"
    )
    ring = load_key_ring(Settings(keys_file=path, default_rpm=60, default_max_concurrency=16))
    assert ring is not None
    assert ring.find(b"sk-aaaa") == KeyPolicy("team-a", 5, 16)
    assert ring.find(b"sk-bbbb") == KeyPolicy("team-b", 60, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- {name: a, key: sk-secret-value, requests_per_minute: -1}", "entry 1, field `requests_per_minute`"),
        ("- {name: a, key: sk-secret-value}\n- {name: b, kee: sk-secret-value}", "entry 2, field `key`"),
        ("- {name: a, key: sk-secret-value, rpm: 3}", "entry 1, field `rpm`"),
        ("- {name: a, key: sk-secret-value}\n- {name: a, key: sk-other}", "field `name`: 'a' is used twice"),
        ("- {name: a, key: sk-secret-value}\n- {name: b, key: sk-secret-value}", "keys 'a' and 'b' are the same"),
        ("{name: a, key: sk-secret-value}", "must be a non-empty YAML list"),
        ("- [sk-secret-value]", "entry 1: must be a mapping"),
        ("- {name: a, key: sk-secret-value", "cannot be read as YAML"),
    ],
)
def test_a_bad_keys_file_names_file_and_field_and_never_the_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_key_ring(Settings(keys_file=path))
    assert str(path) in str(error.value)
    assert message in str(error.value)
    assert "secret-value" not in str(error.value)


def test_settings_never_show_the_keys() -> None:
    settings = Settings(api_keys="sk-visible-nowhere")  # type: ignore[arg-type]
    assert "sk-visible-nowhere" not in repr(settings)
    assert "sk-visible-nowhere" not in str(settings.model_dump())
