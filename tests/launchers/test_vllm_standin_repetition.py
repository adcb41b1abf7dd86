"""The stand-in honours vLLM's `repetition_detection` as vLLM does: same verdicts, same answer shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from launchers.vllm_standin import StandinConfig, StandinServer
from launchers.vllm_standin.chat_request import RequestError
from launchers.vllm_standin.repetition import RepetitionDetection, parse_repetition_detection, repetition_end

LOOP = "intro " + "row a b c " * 50 + "end"  # a 4-word "row" repeated 50 times


def _ids(ids: list[int]) -> list[str]:
    return [f"t{i} " for i in ids]


# vLLM's own unit cases (tests/v1/core/test_repetition_detection.py), on the stand-in's word tokens.
@pytest.mark.parametrize(
    ("ids", "params", "detected"),
    [
        ([1, 2, 3, 1, 2, 3, 1, 2, 3], (3, 2, 3), True),
        ([1, 2, 3, 1, 2, 3], (3, 2, 3), False),
        ([1, 2, 1, 2, 1, 2, 1, 2], (5, 2, 4), True),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], (5, 2, 2), False),
        ([1, 2, 3, 1, 2, 3, 1, 2, 4], (3, 2, 3), False),
        ([1, 2, 3, 4, 5, 6, 5, 6, 5, 6], (3, 2, 3), True),
        ([1, 2, 3, 4, 5, 6, 7, 8] * 5, (10, 2, 3), True),
        ([10, 20, 10, 20, 10, 20], (5, 3, 3), False),  # min_pattern_size filters the 2-token loop
        ([10, 20, 10, 20, 10, 20], (5, 2, 5), False),
        ([1, 2, 1, 2, 1, 2], (0, 0, 0), False),  # disabled
    ],
)
def test_verdicts_match_vllms(ids: list[int], params: tuple[int, int, int], detected: bool) -> None:
    found = repetition_end(_ids(ids), RepetitionDetection(*params), limit=10_000)
    assert (found is not None) == detected


def test_detection_happens_at_the_token_that_completes_the_loop() -> None:
    # vLLM checks after every token: [10, 20] x 3 completes at the sixth token and generation stops there.
    tokens = _ids([10, 20, 10, 20, 10, 20, 10, 20, 99])
    assert repetition_end(tokens, RepetitionDetection(5, 2, 3), limit=100) == 6


def test_the_length_cap_comes_first() -> None:
    tokens = _ids([10, 20, 10, 20, 10, 20])
    assert repetition_end(tokens, RepetitionDetection(5, 2, 3), limit=6) is None


@pytest.mark.parametrize(
    "value",
    [
        {"max_pattern_size": 2, "min_pattern_size": 3, "min_count": 3},
        {"max_pattern_size": -1, "min_count": 3},
        {"max_pattern_size": 4, "min_count": 1},
        {"max_pattern_size": "4", "min_count": 3},
        "4,3",
    ],
)
def test_invalid_settings_are_a_400(value: Any) -> None:
    with pytest.raises(RequestError) as caught:
        parse_repetition_detection({"repetition_detection": value})
    assert caught.value.status == 400


@pytest.fixture
def looping() -> Iterator[StandinServer]:
    server = StandinServer(StandinConfig(models=("m",), reply=LOOP)).start()
    yield server
    server.stop()


def _post(server: StandinServer, **extra: Any) -> dict[str, Any]:
    body = {"model": "m", "messages": [{"role": "user", "content": "read"}], **extra}
    response = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_a_looping_answer_ends_with_finish_reason_repetition(looping: StandinServer) -> None:
    data = _post(looping, repetition_detection={"max_pattern_size": 8, "min_pattern_size": 1, "min_count": 5})
    [choice] = data["choices"]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("repetition", "repetition_detected")
    # "intro" + five rows of four tokens: cut where the fifth repetition completed.
    assert choice["message"]["content"] == "intro " + "row a b c " * 5
    assert data["usage"]["completion_tokens"] == 21
    metrics = httpx.get(looping.root_url + "/metrics", timeout=10).text
    assert 'vllm:request_success_total{engine="0",finished_reason="repetition",model_name="m"} 1.0' in metrics


def test_without_the_field_the_loop_runs_to_its_end(looping: StandinServer) -> None:
    [choice] = _post(looping)["choices"]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", None)
    assert choice["message"]["content"] == LOOP


def test_streams_end_with_the_same_reason(looping: StandinServer) -> None:
    body = {
        "model": "m",
        "stream": True,
        "messages": [{"role": "user", "content": "read"}],
        "repetition_detection": {"max_pattern_size": 8, "min_count": 5},
    }
    raw = httpx.post(f"{looping.base_url}/chat/completions", json=body, timeout=30).text
    assert '"finish_reason":"repetition","stop_reason":"repetition_detected"' in raw.replace(" ", "")
