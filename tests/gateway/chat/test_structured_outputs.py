"""guided_* fields (removed in vLLM 0.12, silently ignored there) are rewritten to structured_outputs."""

from typing import Any

import orjson
import pytest

from gateway.chat.request import inspect_chat_request
from gateway.errors import InvalidRequest

BASE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}


def _rebuilt(**fields: Any) -> dict[str, Any]:
    info = inspect_chat_request(orjson.dumps({**BASE, **fields}))
    assert info.rebuilt_body is not None
    rebuilt: dict[str, Any] = orjson.loads(info.rebuilt_body)
    return rebuilt


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("guided_json", SCHEMA, "json"),
        ("guided_json", orjson.dumps(SCHEMA).decode(), "json"),
        ("guided_regex", r"\d{3}", "regex"),
        ("guided_choice", ["yes", "no"], "choice"),
        ("guided_grammar", 'root ::= "a"', "grammar"),
    ],
)
def test_each_guided_field_becomes_its_structured_outputs_key(field: str, value: Any, key: str) -> None:
    body = _rebuilt(**{field: value, "guided_decoding_backend": "xgrammar", "temperature": 0.5})
    assert body == {**BASE, "temperature": 0.5, "structured_outputs": {key: value}}


def test_a_request_without_guided_fields_is_not_rebuilt() -> None:
    assert inspect_chat_request(orjson.dumps({**BASE, "structured_outputs": {"json": SCHEMA}})).rebuilt_body is None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"guided_json": SCHEMA, "guided_regex": "a"}, "guided_regex"),
        ({"guided_json": SCHEMA, "structured_outputs": {"json": SCHEMA}}, "guided_json"),
        ({"guided_json": SCHEMA, "response_format": {"type": "json_object"}}, "guided_json"),
        ({"guided_json": 3}, "guided_json"),
        ({"guided_choice": []}, "guided_choice"),
        ({"guided_choice": ["a", 1]}, "guided_choice"),
        ({"guided_regex": ""}, "guided_regex"),
        ({"guided_grammar": None}, "guided_grammar"),
    ],
)
def test_what_cannot_be_rewritten_is_a_400_naming_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        inspect_chat_request(orjson.dumps({**BASE, **fields}))
    assert caught.value.param == param
