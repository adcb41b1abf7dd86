"""One contract, two servers: the stand-in and the real vLLM (CPU build, tiny random model) answer alike.

Every test runs against both, for each model the tier serves; the real half carries the `real_vllm` marker.
Assertions are what the gateway and its clients rely on: shapes, SSE framing, usage, errors (status,
OpenAI shape, the wording clients match), /v1/models, /metrics, aborts, request ids, image-token counts.
Real generations use `ignore_eos`, so a random model's early end-of-text cannot change a count.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from gateway.documents.images.geometry import smart_resize
from tests.real_vllm.backends import Backend, standin_backend, vllm_backend
from tests.real_vllm.helpers import (
    READ,
    chat,
    error_of,
    image_part,
    metric_samples,
    png_b64,
    settled,
    stream_chunks,
    total,
    with_images,
)

MODELS = ("qwen2-vl-2b", "qwen3-vl-2b", "dots-ocr")  # dots-ocr last: test_gateway.py runs next on its server
BACKENDS = [pytest.param(("standin", model), id=f"standin-{model}") for model in MODELS] + [
    pytest.param(("vllm", model), id=f"vllm-{model}", marks=pytest.mark.real_vllm) for model in MODELS
]
WAIT_S = 60.0


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    kind, model = request.param
    with ExitStack() as stack:
        if kind == "standin":
            yield stack.enter_context(standin_backend(model))
        else:  # started once per model by the session's RealServers, which stops it before the next
            yield vllm_backend(request.getfixturevalue("real_servers").get(model))


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120.0) as client:
        yield client


def test_models_list_names_the_served_model_with_its_max_model_len(backend: Backend, http: httpx.Client) -> None:
    body = http.get(f"{backend.base_url}/models").json()
    assert body["object"] == "list"
    [card] = body["data"]
    assert (card["id"], card["object"], card["owned_by"]) == (backend.model, "model", "vllm")
    assert card["max_model_len"] == backend.max_model_len


def test_completion_has_the_openai_shape_and_adopts_the_request_id(backend: Backend, http: httpx.Client) -> None:
    request_id = f"contract-{uuid.uuid4().hex}"
    response = chat(http, backend, messages=READ, max_tokens=5, ignore_eos=True, headers={"X-Request-Id": request_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == f"chatcmpl-{request_id}"
    assert (body["object"], body["model"]) == ("chat.completion", backend.model)
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["completion_tokens"] == 5
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_generated_completion_ids_are_unique(backend: Backend, http: httpx.Client) -> None:
    ids = {chat(http, backend, messages=READ, max_tokens=1).json()["id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"chatcmpl-[0-9a-f]{16,32}", completion_id) for completion_id in ids)


def test_stream_is_sse_ending_with_done_and_a_usage_chunk(backend: Backend, http: httpx.Client) -> None:
    request_id = f"contract-{uuid.uuid4().hex}"
    response = chat(
        http,
        backend,
        messages=READ,
        max_tokens=4,
        ignore_eos=True,
        stream=True,
        stream_options={"include_usage": True},
        headers={"X-Request-Id": request_id},
    )
    chunks = stream_chunks(response)
    assert {chunk["id"] for chunk in chunks} == {f"chatcmpl-{request_id}"}
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["model"] == backend.model for chunk in chunks)
    *content, last = chunks
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    reasons = [chunk["choices"][0]["finish_reason"] for chunk in content]
    assert reasons[-1] == "length"
    assert set(reasons[:-1]) == {None}
    assert all(chunk.get("usage") is None for chunk in content)
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + 4
    plain = chat(http, backend, messages=READ, max_tokens=4, ignore_eos=True).json()
    assert usage["prompt_tokens"] == plain["usage"]["prompt_tokens"]


def test_stream_without_stream_options_has_no_usage(backend: Backend, http: httpx.Client) -> None:
    chunks = stream_chunks(chat(http, backend, messages=READ, max_tokens=2, ignore_eos=True, stream=True))
    assert all(chunk["choices"] and chunk.get("usage") is None for chunk in chunks)


def test_unknown_model_is_a_404_listing_the_valid_aliases(backend: Backend, http: httpx.Client) -> None:
    for stream in (False, True):  # a stream that fails validation gets plain JSON, not SSE
        error = error_of(chat(http, backend, model="no-such-model", messages=READ, stream=stream), 404)
        assert (error["type"], error["param"]) == ("NotFoundError", "model")
        assert error["message"].startswith(f"The model `no-such-model` does not exist. Valid aliases: {backend.model}.")


def test_max_tokens_over_max_model_len_is_a_400(backend: Backend, http: httpx.Client) -> None:
    error = error_of(chat(http, backend, messages=READ, max_tokens=100_000), 400)
    assert (error["type"], error["param"]) == ("BadRequestError", "max_tokens")
    assert error["message"].startswith(
        f"max_tokens=100000 cannot be greater than max_model_len={backend.max_model_len}. "
    )


def test_prompt_over_max_model_len_is_a_400(backend: Backend, http: httpx.Client) -> None:
    long_text = "hello " * (backend.max_model_len + 50)
    error = error_of(chat(http, backend, messages=[{"role": "user", "content": long_text}], max_tokens=1), 400)
    assert (error["type"], error["param"]) == ("BadRequestError", "input_tokens")
    assert error["message"].startswith(
        f"This model's maximum context length is {backend.max_model_len} tokens. "
        "However, your prompt contains at least "
    )


def test_prompt_plus_max_tokens_over_the_context_stops_at_length(backend: Backend, http: httpx.Client) -> None:
    messages = [{"role": "user", "content": "hello " * (backend.max_model_len - 600)}]
    measured = chat(http, backend, messages=messages, max_tokens=1).json()["usage"]["prompt_tokens"]
    room = backend.max_model_len - measured
    assert 0 < room < 1000  # the prompt is near the limit, so the generation stays short
    response = chat(http, backend, messages=messages, max_tokens=room + 50, ignore_eos=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == room


def test_malformed_json_is_a_400_bad_request(backend: Backend, http: httpx.Client) -> None:
    response = http.post(
        f"{backend.base_url}/chat/completions", content=b'{"model": ', headers={"Content-Type": "application/json"}
    )
    error = error_of(response, 400)
    assert error["type"] == "Bad Request"
    assert error["param"].startswith("body")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (png_b64(8, 8)[:8] + "AAAA", "cannot identify image file"),  # base64 fine, not an image
        ("bm90IGFuIGltYWdl", "cannot identify image file"),  # "not an image"
        ("TRUNCATED", "image file is truncated"),
    ],
    ids=["garbage", "text", "truncated-png"],
)
def test_undecodable_images_are_400s_saying_failed_to_load_image(
    backend: Backend, http: httpx.Client, data: str, reason: str
) -> None:
    if data == "TRUNCATED":
        whole = base64.b64decode(png_b64(64, 64))
        data = base64.b64encode(whole[: len(whole) - 30]).decode()
    error = error_of(chat(http, backend, messages=with_images(image_part(data)), max_tokens=1), 400)
    assert (error["type"], error["param"]) == ("BadRequestError", None)
    assert error["message"].startswith(f"Failed to load image: {reason}")


def test_more_images_than_the_limit_is_a_400(backend: Backend, http: httpx.Client) -> None:
    image = image_part(png_b64(56, 56))
    error = error_of(chat(http, backend, messages=with_images(image, image), max_tokens=1), 400)
    assert (error["type"], error["param"]) == ("BadRequestError", "image")
    assert error["message"].startswith("At most 1 image(s) may be provided in one prompt.")


def test_metrics_have_the_queue_gauges_and_success_counter_with_labels(backend: Backend, http: httpx.Client) -> None:
    assert chat(http, backend, messages=READ, max_tokens=1).status_code == 200
    samples = metric_samples(http, backend)
    labels = {"engine": "0", "model_name": backend.model}
    for gauge in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert [sample_labels for sample_labels, _ in samples[gauge]] == [labels], gauge
    by_reason = samples["vllm:num_requests_waiting_by_reason"]
    assert {sample_labels["reason"] for sample_labels, _ in by_reason} >= {"capacity", "deferred"}
    assert all({k: v for k, v in sample_labels.items() if k != "reason"} == labels for sample_labels, _ in by_reason)
    success = samples["vllm:request_success_total"]
    assert {sample_labels["finished_reason"] for sample_labels, _ in success} >= {"stop", "length", "abort"}
    assert total(samples, "vllm:request_success_total") >= 1
    assert total(samples, "vllm:prompt_tokens_total") >= 1


def test_client_leaving_a_stream_aborts_it_and_it_is_not_counted_as_a_success(
    backend: Backend, http: httpx.Client
) -> None:
    assert _wait_for_running(http, backend, 0.0)  # nothing of an earlier test finishes during this one
    before = settled(lambda: _successes(http, backend))
    body: dict[str, Any] = {"model": backend.model, "messages": READ, "max_tokens": 3000, "ignore_eos": True}
    with http.stream("POST", f"{backend.base_url}/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: ")).startswith("data: {")
    assert _wait_for_running(http, backend, 0.0)
    assert settled(lambda: _successes(http, backend)) == before
    assert chat(http, backend, messages=READ, max_tokens=1).status_code == 200
    assert settled(lambda: _successes(http, backend)) == before + 1


def _successes(http: httpx.Client, backend: Backend) -> float:
    """Requests vLLM finished for a reason other than an abort (an abort may be counted under `abort` only)."""
    samples = metric_samples(http, backend).get("vllm:request_success_total", [])
    return sum(value for labels, value in samples if labels.get("finished_reason") != "abort")


def _wait_for_running(http: httpx.Client, backend: Backend, value: float) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if total(metric_samples(http, backend), "vllm:num_requests_running") == value:
            return True
        time.sleep(0.2)
    return False


# Sizes around the rounding edges, an extreme aspect ratio, and some over Qwen2-VL's pixel cap.
IMAGE_SIZES = [(56, 56), (100, 30), (640, 480), (1000, 700), (2000, 300), (1133, 703), (1400, 1000)]


def test_image_prompt_tokens_follow_the_models_smart_resize(backend: Backend, http: httpx.Client) -> None:
    text_only = chat(http, backend, messages=READ, max_tokens=1).json()["usage"]["prompt_tokens"]
    for width, height in IMAGE_SIZES:
        resized_h, resized_w = smart_resize(height, width, backend.image_policy)
        expected = (resized_h // backend.image_policy.factor) * (resized_w // backend.image_policy.factor)
        response = chat(http, backend, messages=with_images(image_part(png_b64(width, height))), max_tokens=1)
        assert response.status_code == 200, response.text
        image_tokens = response.json()["usage"]["prompt_tokens"] - text_only
        assert image_tokens == expected + backend.image_overhead, (width, height)
