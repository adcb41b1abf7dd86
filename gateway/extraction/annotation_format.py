"""Reading an annotation format: Mistral's `{"type": "json_schema", "json_schema": {"name", "schema", ...}}`.

The schema is checked before any page is read, so a bad one is a 400 naming the field and never costs GPU time:
its size (GATEWAY_ANNOTATION_MAX_SCHEMA_BYTES), that it is a JSON Schema by its metaschema (`jsonschema`), and
that every `$ref` is local (`#/...`): a remote reference would have the gateway, or vLLM's grammar compiler,
fetch a URL of the client's choosing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from gateway.errors import InvalidRequest
from gateway.http.request_body import json_type


@dataclass(frozen=True)
class AnnotationFormat:
    """A checked schema and its validator; `param` names the field it came from, for errors."""

    name: str
    schema: dict[str, Any]
    validator: Validator
    param: str

    def response_format(self) -> dict[str, Any]:
        """The OpenAI/vLLM `response_format` that constrains decoding to the schema."""
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.schema, "strict": True}}


def read_annotation_format(value: Any, param: str, *, max_bytes: int) -> AnnotationFormat | None:
    """The format at `param` (None when absent); InvalidRequest naming the first problem's field."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"`{param}` must be an object, not {json_type(value)}", param=param)
    if value.get("type") != "json_schema":
        raise InvalidRequest(
            f"`{param}.type` must be json_schema (the only kind annotations take)", param=f"{param}.type"
        )
    spec = value.get("json_schema")
    where = f"{param}.json_schema"
    if not isinstance(spec, dict):
        raise InvalidRequest(f"`{where}` must be an object with `name` and `schema`", param=where)
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"`{where}.name` must be a non-empty string", param=f"{where}.name")
    schema = spec.get("schema")
    where = f"{where}.schema"
    if not isinstance(schema, dict):
        raise InvalidRequest(f"`{where}` must be a JSON Schema object, not {json_type(schema)}", param=where)
    size = len(orjson.dumps(schema))
    if size > max_bytes:
        raise InvalidRequest(
            f"`{where}` is {size} bytes; this gateway takes schemas of at most {max_bytes}", param=where
        )
    _check_refs(schema, where)
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"[{part!r}]" for part in exc.path)
        raise InvalidRequest(
            f"`{where}` is not a valid JSON Schema: {exc.message} (at {path or 'the top'})", param=where
        ) from None
    return AnnotationFormat(name, schema, cls(schema), param)


def _check_refs(node: Any, where: str) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                raise InvalidRequest(
                    f"`{where}`: `$ref` {ref!r} is not local; only `#/...` references are followed", param=where
                )
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
