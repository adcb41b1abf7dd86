"""A chat request with vLLM's removed `guided_json` still constrains the answer: the gateway rewrites it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai

from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL
from tests.running_gateway import GatewayServer

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "currency": {"enum": ["EUR", "USD"]}},
    "required": ["total", "currency"],
}


def _received(standin: StandinServer) -> dict[str, Any]:
    [record] = [r for r in standin.state.requests if r.path == "/v1/chat/completions"]
    assert record.body is not None
    return record.body


def test_guided_json_reaches_vllm_as_structured_outputs(gateway: GatewayServer, standin: StandinServer) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    answer = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "The total?"}],
        extra_body={"guided_json": SCHEMA, "guided_decoding_backend": "xgrammar"},
    )
    received = _received(standin)
    assert received["structured_outputs"] == {"json": SCHEMA}
    assert not any(key.startswith("guided_") for key in received)
    content = answer.choices[0].message.content
    assert content is not None
    jsonschema.validate(json.loads(content), SCHEMA)  # constrained, not ignored


def test_two_constraints_at_once_are_refused(gateway: GatewayServer, standin: StandinServer) -> None:
    body = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": "x"}],
        "guided_choice": ["a"],
        "structured_outputs": {"choice": ["b"]},
    }
    response = httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "guided_choice"
    assert not [r for r in standin.state.requests if r.path == "/v1/chat/completions"]
