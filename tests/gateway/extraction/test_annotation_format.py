"""Annotation formats are checked before any page is read: shape, size, metaschema, local references only."""

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.extraction.annotation_format import read_annotation_format

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}


def _format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}


def test_a_schema_is_read_and_validates_answers() -> None:
    checked = read_annotation_format(_format(SCHEMA), "f", max_bytes=10_000)
    assert checked is not None
    assert checked.validator.is_valid({"total": 3})
    assert not checked.validator.is_valid({"total": "3"})
    assert checked.response_format()["json_schema"] == {"name": "t", "schema": SCHEMA, "strict": True}
    assert read_annotation_format(None, "f", max_bytes=10) is None


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("schema", "f"),
        ({"type": "json_object"}, "f.type"),
        ({"type": "json_schema"}, "f.json_schema"),
        ({"type": "json_schema", "json_schema": {"schema": SCHEMA}}, "f.json_schema.name"),
        (_format([1]), "f.json_schema.schema"),
        (_format({"type": "banana"}), "f.json_schema.schema"),
        (_format({"properties": {"a": {"minLength": -1}}}), "f.json_schema.schema"),
        (_format({"properties": {"a": {"$ref": "file:///etc/passwd"}}}), "f.json_schema.schema"),
        (_format({"description": "x" * 2000}), "f.json_schema.schema"),
    ],
)
def test_what_is_not_a_usable_schema_is_a_400_naming_the_field(value: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_annotation_format(value, "f", max_bytes=1000)
    assert caught.value.param == param
