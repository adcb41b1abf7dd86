"""The stand-in's structured outputs: the smallest schema-valid answer, as constrained decoding would give."""

from typing import Any

import jsonschema
import orjson
import pytest

from launchers.vllm_standin.structured import structured_reply

INVOICE: dict[str, Any] = {
    "type": "object",
    "$defs": {"money": {"type": "number", "minimum": 0}},
    "properties": {
        "number": {"type": "string", "minLength": 3},
        "date": {"type": "string", "format": "date"},
        "total": {"$ref": "#/$defs/money"},
        "currency": {"enum": ["EUR", "USD"]},
        "lines": {
            "type": "array",
            "items": {"type": "object", "properties": {"qty": {"type": "integer"}}},
            "minItems": 1,
        },
        "note": {"type": ["string", "null"]},
        "paid": {"type": "boolean"},
    },
    "required": ["number", "total", "currency", "lines"],
}


@pytest.mark.parametrize(
    "body",
    [
        {"response_format": {"type": "json_schema", "json_schema": {"name": "i", "schema": INVOICE}}},
        {"structured_outputs": {"json": INVOICE}},
        {"structured_outputs": {"json": orjson.dumps(INVOICE).decode()}},
    ],
)
def test_json_schema_answers_validate(body: dict[str, Any]) -> None:
    reply = structured_reply(body)
    assert reply is not None
    assert " " in reply  # spaced like a tokenizer's output, so max_tokens can cut it
    jsonschema.validate(orjson.loads(reply), INVOICE)


def test_choice_json_object_and_ignored_guided_fields() -> None:
    assert structured_reply({"structured_outputs": {"choice": ["yes", "no"]}}) == "yes"
    assert structured_reply({"response_format": {"type": "json_object"}}) == "{}"
    assert structured_reply({"guided_json": INVOICE}) is None  # vLLM >= 0.12 ignores it
    assert structured_reply({"response_format": {"type": "text"}}) is None
