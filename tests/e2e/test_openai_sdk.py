"""What an OpenAI SDK user sees, end to end: SDK -> gateway under uvicorn -> vLLM stand-in."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import time

import openai
import pytest
from PIL import Image

from launchers.vllm_standin import RecordedRequest, StandinServer
from tests.conftest import CHAT_MODEL
from tests.images import chat_with_image, data_url
from tests.running_gateway import GatewayServer


def _last_chat_request(standin: StandinServer) -> RecordedRequest:
    return [r for r in standin.state.requests if r.path == "/v1/chat/completions"][-1]


def _client(gateway: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=10)


def test_models_are_listed_with_tasks_status_and_max_model_len(gateway: GatewayServer) -> None:
    with _client(gateway) as client:
        models = client.models.list().data
        one = client.models.retrieve(CHAT_MODEL)
    assert [m.id for m in models] == [CHAT_MODEL]
    card = models[0].model_dump()
    assert card["object"] == "model"
    assert card["tasks"] == ["chat", "ocr", "extract"]
    assert card["status"] == "ready"
    assert card["max_model_len"] == 8192  # what the stand-in's /v1/models reports
    assert one.id == CHAT_MODEL


def test_chat_with_an_image_is_forwarded_byte_for_byte(gateway: GatewayServer, standin: StandinServer) -> None:
    body = chat_with_image(CHAT_MODEL, data_url())
    with _client(gateway) as client:
        completion = client.chat.completions.create(
            model=CHAT_MODEL,
            messages=body["messages"],
            max_tokens=50,  # type: ignore[arg-type]
        )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == standin.config.reply
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    received = _last_chat_request(standin)
    assert received.path == "/v1/chat/completions"
    assert received.body is not None
    assert received.body["messages"] == body["messages"]  # the image URL arrives untouched
    assert received.body["max_tokens"] == 50


def test_stream_chunks_arrive_while_the_upstream_is_still_generating(
    make_standin: type[StandinServer], make_gateway: type[GatewayServer]
) -> None:
    # 5 tokens at 4 tokens/s: the stand-in needs over a second to finish, so when the first content chunk
    # reaches the client the upstream request must still be running, unless the gateway buffered.
    slow = make_standin(CHAT_MODEL, reply="one two three four five", tokens_per_s=4)  # type: ignore[call-arg]
    gateway = make_gateway({CHAT_MODEL: [slow.base_url]})  # type: ignore[call-arg]
    contents: list[str] = []
    still_running_at_first_chunk = None
    with _client(gateway) as client:
        stream = client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "count"}], stream=True
        )
        for chunk in stream:
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta and still_running_at_first_chunk is None:
                still_running_at_first_chunk = not _last_chat_request(slow).completed
            if delta:
                contents.append(delta)
    assert "".join(contents) == "one two three four five"
    assert still_running_at_first_chunk is True


def test_stream_with_include_usage_ends_with_a_usage_chunk(gateway: GatewayServer) -> None:
    with _client(gateway) as client:
        chunks = list(
            client.chat.completions.create(
                model=CHAT_MODEL,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        plain = list(
            client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
        )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert all(chunk.usage is None for chunk in plain)
    assert chunks[0].choices[0].delta.role == "assistant"


async def test_async_client_chats_and_streams_concurrently(gateway: GatewayServer, standin: StandinServer) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:

        async def one_stream() -> str:
            stream = await client.chat.completions.create(
                model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        async def one_completion() -> str | None:
            completion = await client.chat.completions.create(
                model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}]
            )
            return completion.choices[0].message.content

        results = await asyncio.gather(*(one_stream() for _ in range(5)), *(one_completion() for _ in range(5)))
    assert results == [standin.config.reply] * 10


def test_unknown_model_is_a_404_in_openai_shape(gateway: GatewayServer) -> None:
    with _client(gateway) as client, pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body == {
        "message": "The model `gpt-4o` does not exist. Served models: qwen3-vl-2b (GET /v1/models).",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_upstream_400_passes_through_with_vllms_message(gateway: GatewayServer) -> None:
    # max_tokens over the stand-in's max_model_len (8192): vLLM's own 400.
    with _client(gateway) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=100_000
        )
    assert "cannot be greater than max_model_len=8192" in caught.value.message  # vLLM 0.32 wording


def test_time_is_not_lost_on_the_way(gateway: GatewayServer) -> None:
    # Not a performance assertion: a sanity check that 20 small requests do not take seconds each.
    with _client(gateway) as client:
        started = time.monotonic()
        for _ in range(20):
            client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 20


def test_a_multi_megabyte_image_is_forwarded_whole(gateway: GatewayServer, standin: StandinServer) -> None:
    # Random pixels do not compress: about 3 MB of PNG, 4 MB of base64.
    buffer = io.BytesIO()
    Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3)).save(buffer, format="PNG", compress_level=1)
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    body = chat_with_image(CHAT_MODEL, url)
    with _client(gateway) as client:
        completion = client.chat.completions.create(model=CHAT_MODEL, messages=body["messages"])  # type: ignore[arg-type]
    assert completion.choices[0].message.content == standin.config.reply
    assert _last_chat_request(standin).body["messages"][0]["content"][0]["image_url"]["url"] == url  # type: ignore[index]
