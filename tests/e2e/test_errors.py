"""Every kind of error a client can meet, each in the OpenAI error shape with the right status."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import openai
import orjson
import pytest

from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL
from tests.images import chat_with_image, data_url
from tests.running_gateway import GatewayServer

HI = [{"role": "user", "content": "hi"}]


def _post(gateway: GatewayServer, body: bytes | dict[str, object], **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        gateway.base_url + "/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    # `upstream_type` only on errors passed through from vLLM: its own word for the error.
    assert set(body["error"]) - {"upstream_type"} == {"message", "type", "param", "code"}
    error: dict[str, object] = body["error"]
    return error


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b'{"model": "qwen3-vl-2b", "messages": [', None, "not valid JSON"),
        (b"[1, 2, 3]", None, "must be a JSON object"),
        ({"messages": HI}, "model", "`model` is required"),
        ({"model": 42, "messages": HI}, "model", "must be a string"),
        ({"model": CHAT_MODEL, "messages": HI, "stream": "yes"}, "stream", "must be a boolean"),
        ({"model": CHAT_MODEL, "messages": {"role": "user"}}, "messages", "non-empty array"),
        (
            chat_with_image(CHAT_MODEL, "data:text/html;base64,PGh0bWw+"),
            "messages[0].content[0].image_url.url",
            "not an image",
        ),
        (
            chat_with_image(CHAT_MODEL, "http://169.254.169.254/latest/meta-data"),
            "messages[0].content[0].image_url.url",
            "GATEWAY_REMOTE_IMAGE_DOMAINS",
        ),
        (
            chat_with_image(CHAT_MODEL, "data:application/pdf;base64,JVBERi0xLjcK"),
            "messages[0].content[0].image_url.url",
            "send it to /v1/ocr or /v1/layout",
        ),
        (
            chat_with_image(CHAT_MODEL, "data:image/png;base64,JVBERi0xLjcKJeLjz9MKMSAwIG9iago="),
            "messages[0].content[0].image_url.url",
            "send it to /v1/ocr or /v1/layout",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    gateway: GatewayServer, standin: StandinServer, body: bytes | dict[str, object], param: str | None, words: str
) -> None:
    response = _post(gateway, body)
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in str(error["message"])
    # Bad input never reaches the GPU, and the gateway keeps serving.
    assert not [r for r in standin.state.requests if r.path == "/v1/chat/completions"]
    assert _post(gateway, {"model": CHAT_MODEL, "messages": HI}).status_code == 200


def test_a_body_over_the_limit_is_a_413(make_gateway: Callable[..., GatewayServer], standin: StandinServer) -> None:
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, max_body_bytes=64 * 1024)
    big = chat_with_image(CHAT_MODEL, data_url() + "A" * 100_000)
    response = _post(gateway, big)
    assert response.status_code == 413
    assert "exceeds the limit of 65536 bytes" in str(_error(response)["message"])
    # Same limit without a Content-Length: a chunked upload is counted as it arrives.
    chunked = httpx.post(gateway.base_url + "/chat/completions", content=iter([orjson.dumps(big)]), timeout=10)
    assert chunked.status_code == 413


@pytest.mark.parametrize("path", ["/ocr", "/layout", "/jobs"])
def test_a_declared_oversize_body_on_a_document_route_is_an_openai_413(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer, path: str
) -> None:
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, max_body_bytes=64 * 1024)
    big = orjson.dumps({"image": "A" * 100_000})
    for content in (big, iter([big])):  # declared by Content-Length, then chunked (counted as it arrives)
        response = httpx.post(
            gateway.base_url + path, content=content, headers={"content-type": "application/json"}, timeout=10
        )
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/json"
        assert "exceeds the limit of 65536 bytes" in str(_error(response)["message"])
    files = {"file": ("page.png", b"\x89PNG" + b"\0" * 100_000, "image/png")}
    multipart = httpx.post(gateway.base_url + path, files=files, data={"task": "ocr"}, timeout=10)
    assert multipart.status_code == 413, multipart.text
    assert _error(multipart)["type"] == "invalid_request_error"


def test_a_huge_model_name_is_not_echoed_back_whole(gateway: GatewayServer) -> None:
    name = "m" * 1_000_000
    response = _post(gateway, {"model": name, "messages": HI})
    assert response.status_code == 404
    message = str(_error(response)["message"])
    assert len(message) < 300
    assert "1,000,000 characters" in message
    ocr = httpx.post(gateway.base_url + "/ocr", json={"image": "AAAA", "model": name}, timeout=10)
    assert ocr.status_code == 404
    assert len(str(_error(ocr)["message"])) < 300


def test_max_tokens_over_the_cap_is_a_400_and_never_reaches_vllm(
    make_gateway: Callable[..., GatewayServer], standin: StandinServer
) -> None:
    gateway = make_gateway({CHAT_MODEL: [standin.base_url]}, max_completion_tokens=256)
    for field in ("max_tokens", "max_completion_tokens"):
        response = _post(gateway, {"model": CHAT_MODEL, "messages": HI, field: 257})
        assert response.status_code == 400
        error = _error(response)
        assert (error["type"], error["param"]) == ("invalid_request_error", field)
        assert "over this gateway's limit of 256" in str(error["message"])
    assert not [r for r in standin.state.requests if r.path == "/v1/chat/completions"]
    assert _post(gateway, {"model": CHAT_MODEL, "messages": HI, "max_tokens": 256}).status_code == 200


def test_unreachable_upstream_is_a_503(make_gateway: Callable[..., GatewayServer]) -> None:
    gateway = make_gateway({CHAT_MODEL: [f"http://127.0.0.1:{_closed_port()}/v1"]}, wait_ready=False)
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI})
    assert response.status_code == 503
    error = _error(response)
    assert error["type"] == "service_unavailable"
    assert "unreachable" in str(error["message"])
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_upstream_retries_total{kind="connect",model="qwen3-vl-2b"} 2.0' in metrics


def test_slow_upstream_is_a_504(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    slow = make_standin(CHAT_MODEL, latency_s=3.0)
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]}, read_timeout_s=0.3)
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI})
    assert response.status_code == 504
    assert _error(response)["type"] == "timeout"


def test_upstream_503_is_retried_transparently(gateway: GatewayServer, standin: StandinServer) -> None:
    standin.state.faults.fail_next = 2
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI})
    assert response.status_code == 200

    def statuses() -> list[int | None]:
        return [r.status for r in standin.state.requests if r.path == "/v1/chat/completions"]

    # The stand-in files its record just after the last byte left, so give it a moment.
    assert standin.state.wait_for(lambda: statuses() == [503, 503, 200], timeout=2.0), statuses()
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_upstream_retries_total{kind="status_503",model="qwen3-vl-2b"} 2.0' in metrics


def test_upstream_5xx_left_after_retries_passes_through(gateway: GatewayServer, standin: StandinServer) -> None:
    standin.state.faults.fail_next = 10
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI})
    assert response.status_code == 503
    assert len([r for r in standin.state.requests if r.path == "/v1/chat/completions"]) == 3  # retry_attempts


def test_upstream_4xx_is_not_retried(gateway: GatewayServer, standin: StandinServer) -> None:
    standin.state.faults.fail_next = 1
    standin.state.faults.fail_status = 422
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI})
    assert response.status_code == 422
    assert len([r for r in standin.state.requests if r.path == "/v1/chat/completions"]) == 1


def test_connection_dropped_before_answering_is_retried(gateway: GatewayServer, standin: StandinServer) -> None:
    standin.state.faults.drop_next = 1
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == standin.config.reply


def test_garbage_from_upstream_is_a_502(gateway: GatewayServer, standin: StandinServer) -> None:
    standin.state.faults.garbage_next = 1
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI})
    assert response.status_code == 502
    assert _error(response)["type"] == "bad_gateway"


def test_flat_and_nested_upstream_errors_read_the_same(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    old = make_standin(CHAT_MODEL, error_shape="flat")
    gateway = make_gateway({CHAT_MODEL: [old.base_url]})
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI, "max_tokens": 100_000})
    assert response.status_code == 400
    error = _error(response)
    assert "cannot be greater than max_model_len" in str(error["message"])  # vLLM 0.32 wording
    assert (error["type"], error["upstream_type"]) == ("invalid_request_error", "BadRequestError")


def test_upstream_api_key_is_sent_and_a_wrong_one_is_a_502(
    make_standin: Callable[..., StandinServer],
    make_gateway: Callable[..., GatewayServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guarded = make_standin(CHAT_MODEL, api_key="sk-upstream")
    gateway = make_gateway({CHAT_MODEL: [guarded.base_url]})
    assert _post(gateway, {"model": CHAT_MODEL, "messages": HI}).status_code == 502  # the gateway has no key
    model = gateway.state.models[CHAT_MODEL]
    model.upstreams[0].api_key = "sk-upstream"
    response = _post(gateway, {"model": CHAT_MODEL, "messages": HI}, authorization="Bearer client-key")
    assert response.status_code == 200
    # The upstream gets the gateway's key, never the client's.
    assert guarded.state.wait_for(lambda: any(r.status == 200 for r in guarded.state.requests), timeout=2.0)
    served = [r for r in guarded.state.requests if r.status == 200][-1]
    assert served.headers["authorization"] == "Bearer sk-upstream"


def test_mid_stream_error_event_reaches_the_sdk(gateway: GatewayServer, standin: StandinServer) -> None:
    standin.state.faults.stream_error_after = 2
    with (
        openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client,
        pytest.raises(openai.APIError),
    ):
        for _ in client.chat.completions.create(model=CHAT_MODEL, messages=HI, stream=True):  # type: ignore[arg-type]
            pass


def _raw_stream(gateway: GatewayServer) -> bytes:
    body = {"model": CHAT_MODEL, "messages": HI, "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw())


def test_a_broken_stream_ends_with_an_error_event_and_done(gateway: GatewayServer, standin: StandinServer) -> None:
    standin.state.faults.stream_cut_after = 3
    raw = _raw_stream(gateway)
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    error = orjson.loads(events[-2].removeprefix(b"data: "))["error"]
    assert error["type"] == "bad_gateway"
    assert "stream broke" in error["message"]
    assert all(e.startswith(b"data: ") for e in events)  # no half event leaked
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_upstream_errors_total{kind="stream_broken",model="qwen3-vl-2b"} 1.0' in metrics


def test_vllm_error_event_is_relayed_then_done(gateway: GatewayServer, standin: StandinServer) -> None:
    standin.state.faults.stream_error_after = 1
    events = [e for e in _raw_stream(gateway).split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    assert b'"error"' in events[-2]
    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_upstream_errors_total{kind="stream_error_event",model="qwen3-vl-2b"} 1.0' in metrics


def test_unknown_route_and_wrong_method_are_openai_shaped(gateway: GatewayServer) -> None:
    missing = httpx.get(gateway.root_url + "/v1/embeddings")
    assert missing.status_code == 404
    assert _error(missing)["type"] == "not_found_error"
    wrong = httpx.get(gateway.base_url + "/chat/completions")
    assert wrong.status_code == 405
    assert _error(wrong)["type"] == "invalid_request_error"


def test_an_unknown_model_is_a_404_listing_the_served_ones(gateway: GatewayServer) -> None:
    chat = _post(gateway, {"model": "gpt-4o", "messages": HI})
    document = httpx.post(gateway.base_url + "/ocr", data={"model": "gpt-4o"}, files={"file": ("a.png", b"x")})
    card = httpx.get(gateway.base_url + "/models/gpt-4o")
    for response in (chat, document, card):
        assert response.status_code == 404
        assert f"Served models: {CHAT_MODEL} (GET /v1/models)" in str(_error(response)["message"])


def test_models_with_a_trailing_slash_answers_like_without(gateway: GatewayServer) -> None:
    with_slash = httpx.get(gateway.base_url + "/models/")
    assert with_slash.status_code == 200
    assert with_slash.json()["data"] == httpx.get(gateway.base_url + "/models").json()["data"]


def test_an_unsupported_document_format_lists_pdf(gateway: GatewayServer) -> None:
    text = {"file": ("notes.txt", b"plain text, no image")}
    response = httpx.post(gateway.base_url + "/ocr", data={"model": CHAT_MODEL}, files=text)
    assert response.status_code == 400
    assert "PDF, JPEG, PNG" in str(_error(response)["message"])
