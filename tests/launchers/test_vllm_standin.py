"""The vLLM stand-in speaks vLLM's OpenAI-compatible API (vllm/entrypoints/openai, vllm/v1/metrics).

Behaviour users see goes through real HTTP: the official `openai` SDK, and raw httpx where the
bytes themselves are the specification (SSE framing, error bodies).
"""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from launchers.vllm_standin import Faults, StandinConfig, StandinServer, split_tokens

MODEL = "standin-m"
REPLY = "The quick brown fox jumps over the lazy dog."
REPLY_TOKENS = len(split_tokens(REPLY))  # 9 simulated tokens
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "read this page"}]  # 3 prompt tokens
WAIT_S = 5.0
PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360606060000000050001a5f645400000000049454e44ae426082"
    )
).decode()  # a valid 1x1 RGBA PNG: the stand-in decodes images as vLLM does

ServerFactory = Callable[..., StandinServer]


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start stand-ins with config overrides; all are stopped at teardown."""
    servers: list[StandinServer] = []

    def start(**overrides: Any) -> StandinServer:
        settings: dict[str, Any] = {"models": (MODEL, "alias"), "reply": REPLY, "root": "org/Standin-M"}
        settings.update(overrides)
        server = StandinServer(StandinConfig(**settings)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> StandinServer:
    return make_server()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=WAIT_S) as client:
        yield client


@pytest.fixture
def sdk(server: StandinServer) -> Iterator[OpenAI]:
    # No retries: a fault must reach the test, not be papered over by the SDK.
    with OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=WAIT_S) as client:
        yield client


def chat_url(server: StandinServer) -> str:
    return f"{server.base_url}/chat/completions"


def sse_events(raw: bytes) -> list[bytes]:
    """Split a stream body into events, checking each is exactly `data: ...` + blank line."""
    assert raw.endswith(b"\n\n")
    events = raw[:-2].split(b"\n\n")
    for event in events:
        assert event.startswith(b"data: ")
        assert b"\n" not in event  # one line per event: no `event:` or `id:` lines
    return [event[len(b"data: ") :] for event in events]


def stream_chunks(http: httpx.Client, server: StandinServer, **extra: Any) -> list[dict[str, Any]]:
    response = http.post(chat_url(server), json={"model": MODEL, "messages": USER, "stream": True, **extra})
    assert response.status_code == 200
    events = sse_events(response.content)
    assert events[-1] == b"[DONE]"
    return [json.loads(event) for event in events[:-1]]


# -- utility endpoints -------------------------------------------------------------------------


def test_health_is_an_empty_200_and_version_is_reported(server: StandinServer, http: httpx.Client) -> None:
    health = http.get(f"{server.root_url}/health")
    assert (health.status_code, health.content) == (200, b"")
    assert http.get(f"{server.root_url}/version").json() == {"version": "0.32.0-standin"}


def test_unhealthy_engine_makes_health_an_empty_503(server: StandinServer, http: httpx.Client) -> None:
    server.state.faults.healthy = False
    health = http.get(f"{server.root_url}/health")
    assert (health.status_code, health.content) == (503, b"")


def test_models_list_has_one_vllm_card_per_served_name(server: StandinServer, http: httpx.Client) -> None:
    body = http.get(f"{server.base_url}/models").json()
    assert body["object"] == "list"
    assert [card["id"] for card in body["data"]] == [MODEL, "alias"]
    card = body["data"][0]
    assert list(card) == ["id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission"]
    assert (card["object"], card["owned_by"], card["root"], card["parent"]) == ("model", "vllm", "org/Standin-M", None)
    assert card["max_model_len"] == 8192
    permission = card["permission"][0]
    assert re.fullmatch(r"modelperm-[0-9a-f]{32}", permission["id"])
    assert permission["object"] == "model_permission"
    assert (permission["allow_sampling"], permission["allow_fine_tuning"], permission["group"]) == (True, False, None)


def test_unknown_route_gets_fastapis_detail_body(server: StandinServer, http: httpx.Client) -> None:
    missing = http.post(f"{server.base_url}/no-such-route", json={})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong_method = http.get(chat_url(server))
    assert (wrong_method.status_code, wrong_method.json()) == (405, {"detail": "Method Not Allowed"})


def test_metrics_expose_routing_gauges_with_model_and_engine_labels(
    server: StandinServer, sdk: OpenAI, http: httpx.Client
) -> None:
    sdk.chat.completions.create(model=MODEL, messages=USER, max_tokens=2)
    response = http.get(f"{server.root_url}/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    labels = f'engine="0",model_name="{MODEL}"'
    for series in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
        assert f"# TYPE vllm:{series} gauge" in text
        assert f"vllm:{series}{{{labels}}} 0.0" in text
    assert f"vllm:prompt_tokens_total{{{labels}}} 3.0" in text
    assert f"vllm:generation_tokens_total{{{labels}}} 2.0" in text
    assert f'vllm:request_success_total{{engine="0",finished_reason="length",model_name="{MODEL}"}} 1.0' in text
    for reason in ("capacity", "deferred"):
        assert f'vllm:num_requests_waiting_by_reason{{{labels},reason="{reason}"}} 0.0' in text


# -- chat completions ----------------------------------------------------------------------------


def test_non_stream_completion_has_every_vllm_field(server: StandinServer, http: httpx.Client) -> None:
    body = http.post(chat_url(server), json={"messages": USER}).json()  # model omitted: served model
    assert list(body) == [
        "id", "object", "created", "model", "choices", "service_tier", "system_fingerprint",
        "usage", "prompt_logprobs", "prompt_token_ids", "kv_transfer_params",
    ]  # fmt: skip
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", body["id"])
    assert (body["object"], body["model"]) == ("chat.completion", MODEL)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant", "content": REPLY, "refusal": None, "annotations": None, "audio": None,
                "function_call": None, "tool_calls": [], "reasoning": None,
            },
            "logprobs": None, "finish_reason": "stop", "stop_reason": None, "token_ids": None,
        }
    ]  # fmt: skip
    assert body["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 3 + REPLY_TOKENS,
        "completion_tokens": REPLY_TOKENS,
        "prompt_tokens_details": None,
    }


def test_second_served_name_is_accepted_and_first_is_reported(sdk: OpenAI) -> None:
    completion = sdk.chat.completions.create(model="alias", messages=USER)
    assert completion.model == MODEL
    assert completion.choices[0].message.content == REPLY


def test_max_tokens_truncates_the_reply_with_finish_reason_length(sdk: OpenAI) -> None:
    completion = sdk.chat.completions.create(model=MODEL, messages=USER, max_tokens=3)
    assert completion.choices[0].message.content == "The quick brown "
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_responder_computes_the_reply_from_the_request(make_server: ServerFactory, http: httpx.Client) -> None:
    server = make_server(responder=lambda body: f"echo {body['messages'][0]['content']}")
    body = http.post(chat_url(server), json={"model": MODEL, "messages": USER}).json()
    assert body["choices"][0]["message"]["content"] == "echo read this page"


def test_images_count_256_prompt_tokens_each(server: StandinServer, http: httpx.Client) -> None:
    content = [
        {"type": "text", "text": "OCR this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}},
    ]
    body = http.post(chat_url(server), json={"messages": [{"role": "user", "content": content}]}).json()
    assert body["usage"]["prompt_tokens"] == 2 + 256


def test_undecodable_base64_image_is_a_400(server: StandinServer, http: httpx.Client) -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not-base64@@"}}]
    response = http.post(chat_url(server), json={"messages": [{"role": "user", "content": content}]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("BadRequestError", 400)
    assert "image" in error["message"]


def test_unknown_model_is_a_404_naming_the_model(server: StandinServer, sdk: OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="nope", messages=USER)
    response = http.post(chat_url(server), json={"model": "nope", "messages": USER})
    assert response.json() == {
        "error": {
            "message": "The model `nope` does not exist. Valid aliases: standin-m, alias.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL}, "body.messages"),
        ({"model": MODEL, "messages": "hi"}, "body.messages"),
        ([1, 2], "body"),
        ({"model": MODEL, "messages": USER, "max_tokens": "many"}, "body.max_tokens"),
    ],
)
def test_schema_errors_are_400_with_the_field_path(
    server: StandinServer, http: httpx.Client, body: Any, param: str
) -> None:
    response = http.post(chat_url(server), json=body)
    assert response.status_code == 400  # vLLM turns pydantic's 422 into 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("Bad Request", param, 400)
    assert error["message"].startswith("1 validation error:")


def test_prompt_plus_max_tokens_beyond_context_stops_at_length(make_server: ServerFactory, http: httpx.Client) -> None:
    # vLLM 0.32 answers 200 and generates what fits (measured); it refuses only max_tokens > max_model_len.
    server = make_server(max_model_len=8, reply=REPLY)
    body = http.post(chat_url(server), json={"messages": USER, "max_tokens": 8}).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 8,
        "completion_tokens": 5,
        "prompt_tokens_details": None,
    }


def test_max_tokens_beyond_max_model_len_is_a_400(make_server: ServerFactory, http: httpx.Client) -> None:
    server = make_server(max_model_len=50)
    response = http.post(chat_url(server), json={"messages": USER, "max_tokens": 51})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("BadRequestError", "max_tokens")
    assert error["message"] == (
        "max_tokens=51 cannot be greater than max_model_len=50. Please request fewer output tokens. "
        "(parameter=max_tokens, value=51)"
    )


def test_flat_error_shape_is_the_pre_0_10_1_body(make_server: ServerFactory, http: httpx.Client) -> None:
    server = make_server(error_shape="flat")
    response = http.post(chat_url(server), json={"model": "nope", "messages": USER})
    assert response.json() == {
        "object": "error",
        "message": "The model `nope` does not exist. Valid aliases: standin-m, alias.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }


def test_api_key_guards_v1_only_with_vllms_unauthorized_body(make_server: ServerFactory, http: httpx.Client) -> None:
    server = make_server(api_key="sekret")
    denied = http.get(f"{server.base_url}/models", headers={"Authorization": "Bearer wrong"})
    assert (denied.status_code, denied.json()) == (401, {"error": "Unauthorized"})
    assert http.post(chat_url(server), json={"messages": USER}).status_code == 401
    assert http.get(f"{server.base_url}/models", headers={"Authorization": "bearer sekret"}).status_code == 200
    assert http.get(f"{server.root_url}/health").status_code == 200
    assert http.get(f"{server.root_url}/metrics").status_code == 200


# -- streaming -----------------------------------------------------------------------------------


def test_stream_is_sse_with_role_first_finish_on_last_content_and_done(
    server: StandinServer, http: httpx.Client
) -> None:
    response = http.post(chat_url(server), json={"model": MODEL, "messages": USER, "stream": True})
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    events = sse_events(response.content)
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len(chunks) == 1 + REPLY_TOKENS
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    assert chunks[0]["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
            "stop_reason": None,
        }
    ]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks[1:]) == REPLY
    assert [c["choices"][0]["finish_reason"] for c in chunks[1:]] == [None] * (REPLY_TOKENS - 1) + ["stop"]


def test_stream_reassembles_with_the_sdk(sdk: OpenAI) -> None:
    with sdk.chat.completions.create(model=MODEL, messages=USER, stream=True) as stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == REPLY


def test_chunk_tokens_groups_tokens_per_chunk(make_server: ServerFactory, http: httpx.Client) -> None:
    chunks = stream_chunks(http, make_server(chunk_tokens=4))
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:]] == [
        "The quick brown fox ",
        "jumps over the lazy ",
        "dog.",
    ]


def test_stream_options_object_turns_include_usage_on(server: StandinServer, http: httpx.Client) -> None:
    chunks = stream_chunks(http, server, stream_options={})
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 3 + REPLY_TOKENS,
        "completion_tokens": REPLY_TOKENS,
    }


def test_include_usage_false_leaves_usage_out(server: StandinServer, http: httpx.Client) -> None:
    chunks = stream_chunks(http, server, stream_options={"include_usage": False})
    assert all("usage" not in c and c["choices"] for c in chunks)


def test_continuous_usage_stats_put_usage_on_every_chunk(server: StandinServer, http: httpx.Client) -> None:
    chunks = stream_chunks(http, server, stream_options={"include_usage": True, "continuous_usage_stats": True})
    assert [c["usage"]["completion_tokens"] for c in chunks] == [*range(REPLY_TOKENS + 1), REPLY_TOKENS]


def test_stream_truncated_by_max_tokens_finishes_with_length(server: StandinServer, http: httpx.Client) -> None:
    chunks = stream_chunks(http, server, max_tokens=2)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "length"]


def test_stream_options_without_stream_is_a_400(server: StandinServer, http: httpx.Client) -> None:
    response = http.post(chat_url(server), json={"messages": USER, "stream_options": {"include_usage": True}})
    assert response.status_code == 400
    assert "Stream options can only be defined when stream is true." in response.json()["error"]["message"]


# -- faults --------------------------------------------------------------------------------------


def test_fail_next_fails_that_many_requests_with_the_status(server: StandinServer, sdk: OpenAI) -> None:
    server.state.faults.fail_next = 1
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.chat.completions.create(model=MODEL, messages=USER)
    assert failed.value.status_code == 503
    assert failed.value.body == {
        "message": "Simulated failure injected by the vLLM stand-in (HTTP 503).",
        "type": "Service Unavailable",
        "param": None,
        "code": 503,
    }
    assert sdk.chat.completions.create(model=MODEL, messages=USER).choices


def test_drop_next_closes_the_connection_without_a_response(server: StandinServer, sdk: OpenAI) -> None:
    server.state.faults.drop_next = 1
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(model=MODEL, messages=USER)
    assert server.state.requests[-1].outcome == "dropped"
    assert sdk.chat.completions.create(model=MODEL, messages=USER).choices


def test_garbage_next_answers_200_with_a_non_json_body(server: StandinServer, http: httpx.Client) -> None:
    server.state.faults.garbage_next = 1
    response = http.post(chat_url(server), json={"messages": USER})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_stream_error_after_sends_vllms_error_event_then_done(
    server: StandinServer, http: httpx.Client, sdk: OpenAI
) -> None:
    server.state.faults.stream_error_after = 2
    response = http.post(chat_url(server), json={"messages": USER, "stream": True})
    assert response.status_code == 200
    events = sse_events(response.content)
    assert len(events) == 1 + 2 + 2  # role, two content chunks, the error, [DONE]
    assert json.loads(events[-2]) == {
        "error": {"message": "Internal server error", "type": "InternalServerError", "param": None, "code": 500}
    }
    assert events[-1] == b"[DONE]"
    with (
        pytest.raises(openai.APIError, match="Internal server error"),
        sdk.chat.completions.create(model=MODEL, messages=USER, stream=True) as stream,
    ):
        list(stream)


def test_flat_servers_wrap_the_flat_body_in_the_error_event(make_server: ServerFactory, http: httpx.Client) -> None:
    server = make_server(error_shape="flat")
    server.state.faults.stream_error_after = 0
    events = sse_events(http.post(chat_url(server), json={"messages": USER, "stream": True}).content)
    assert json.loads(events[1]) == {
        "error": {
            "object": "error",
            "message": "Internal server error",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }
    assert events[2:] == [b"[DONE]"]


def test_stream_cut_after_ends_the_body_without_done(server: StandinServer, http: httpx.Client) -> None:
    server.state.faults.stream_cut_after = 3
    received: list[bytes] = []
    with (
        http.stream("POST", chat_url(server), json={"messages": USER, "stream": True}) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        _read_raw(response, received)
    received_bytes = b"".join(received)
    assert len(sse_events(received_bytes)) == 1 + 3
    assert b"[DONE]" not in received_bytes


def test_faults_are_controlled_over_http(server: StandinServer, http: httpx.Client) -> None:
    url = f"{server.root_url}/_standin/faults"
    assert http.post(url, json={"fail_next": 2, "fail_status": 500}).json()["fail_next"] == 2
    failed = http.post(chat_url(server), json={"messages": USER})
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "InternalServerError"
    assert http.post(url, json={"no_such_fault": 1}).status_code == 400
    assert http.delete(url).json() == Faults().to_dict()
    assert http.post(chat_url(server), json={"messages": USER}).status_code == 200


def test_faults_reject_unknown_names_and_wrong_types() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="unknown fault"):
        faults.update({"explode": True})
    with pytest.raises(ValueError, match="wrong type"):
        faults.update({"drop_next": True})
    faults.update({"stream_cut_after": 0, "extra_latency_s": 1})
    assert (faults.stream_cut_after, faults.extra_latency_s) == (0, 1.0)


# -- recording, queueing, cancellation -----------------------------------------------------------


def test_requests_are_recorded_and_listed_over_http(server: StandinServer, http: httpx.Client) -> None:
    http.post(chat_url(server), json={"messages": USER}, headers={"X-Trace": "t1"})
    # The stand-in files the outcome just after the last byte left, so the client can be first.
    assert server.state.wait_for(lambda: server.state.requests[-1].outcome == "completed", WAIT_S)
    record = server.state.requests[-1]
    assert (record.method, record.path, record.outcome, record.status) == (
        "POST",
        "/v1/chat/completions",
        "completed",
        200,
    )
    assert record.headers["x-trace"] == "t1"
    assert record.body == {"messages": USER}
    listed = http.get(f"{server.root_url}/_standin/requests").json()
    assert listed["completed_count"] == 1
    assert listed["requests"][0]["outcome"] == "completed"
    assert http.delete(f"{server.root_url}/_standin/requests").json() == {"cleared": 1}
    assert server.state.requests == []


def test_requests_beyond_max_num_seqs_wait_and_show_in_metrics(make_server: ServerFactory, http: httpx.Client) -> None:
    server = make_server(max_num_seqs=1, latency_s=0.5)
    state = server.state
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(http.post, chat_url(server), json={"messages": USER})
        assert state.wait_for(lambda: state.running == 1, WAIT_S)
        second = pool.submit(http.post, chat_url(server), json={"messages": USER})
        assert state.wait_for(lambda: state.waiting == 1, WAIT_S)
        metrics = http.get(f"{server.root_url}/metrics").text
        labels = f'engine="0",model_name="{MODEL}"'
        assert f"vllm:num_requests_waiting{{{labels}}} 1.0" in metrics
        assert f'vllm:num_requests_waiting_by_reason{{{labels},reason="capacity"}} 1.0' in metrics
        assert f"vllm:num_requests_running{{{labels}}} 1.0" in metrics
        assert first.result(WAIT_S).status_code == second.result(WAIT_S).status_code == 200
    assert (state.running, state.waiting, state.completed_count) == (0, 0, 2)


def test_client_leaving_mid_stream_is_recorded_as_aborted(make_server: ServerFactory, http: httpx.Client) -> None:
    server = make_server(tokens_per_s=20)
    state = server.state
    with http.stream("POST", chat_url(server), json={"messages": USER, "stream": True}) as response:
        lines = response.iter_lines()
        assert "assistant" in next(lines)  # the role chunk arrived; leave before the reply ends
    assert state.wait_for(lambda: state.aborted_count == 1, WAIT_S)
    assert state.wait_for(lambda: state.running == 0, WAIT_S)
    assert state.requests[-1].aborted


def test_client_leaving_during_latency_is_recorded_as_aborted(make_server: ServerFactory) -> None:
    server = make_server(latency_s=3.0)
    state = server.state
    with httpx.Client(timeout=0.3) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post(chat_url(server), json={"messages": USER})
    assert state.wait_for(lambda: state.aborted_count == 1 and state.running == 0, WAIT_S)
    assert state.completed_count == 0


# -- command line --------------------------------------------------------------------------------


def test_cli_serves_health_and_exits_0_on_sigterm(http: httpx.Client) -> None:
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "launchers.vllm_standin", "--port", "0", "--model", MODEL]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = _readline(proc.stdout, WAIT_S)
            match = re.fullmatch(
                rf"vllm stand-in \(simulated, no GPU\) serving {MODEL} on (http://127\.0\.0\.1:\d+)/v1\n", line
            )
            assert match, line
            assert http.get(f"{match[1]}/health").status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(WAIT_S) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(WAIT_S)


def _read_raw(response: httpx.Response, sink: list[bytes]) -> None:
    for data in response.iter_raw():
        sink.append(data)


def _readline(stream: Any, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert result, "the stand-in printed nothing in time"
    return result[0]
