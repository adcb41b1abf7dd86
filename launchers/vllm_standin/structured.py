"""Structured outputs as vLLM applies them: `response_format` json_schema / json_object and `structured_outputs`.

Real vLLM constrains decoding to the schema, so even a model with random weights answers schema-valid JSON
(or stops mid-way at `max_tokens`, leaving invalid JSON with finish_reason "length"). The stand-in writes the
smallest instance of the schema instead: every property present, the first enum value, minimum numbers. The
JSON keeps its spaces so the simulated tokenizer cuts it at `max_tokens` as vLLM would. `choice` answers its
first choice; `regex` and `grammar` are not simulated (the responder's text is returned, as if unconstrained).
The removed `guided_*` fields are ignored, as vLLM >= 0.12 ignores them.
"""

from __future__ import annotations

import json
from typing import Any

_MAX_DEPTH = 12


def structured_reply(body: dict[str, Any]) -> str | None:
    """The constrained answer the request asks for, or None when nothing constrains it."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema", {}) if isinstance(spec, dict) else {}
            return json.dumps(instance(schema, schema))
        if kind == "json_object":
            return "{}"
    outputs = body.get("structured_outputs")
    if isinstance(outputs, dict):
        if "json" in outputs:
            schema = outputs["json"]
            schema = json.loads(schema) if isinstance(schema, str) else schema
            return json.dumps(instance(schema, schema))
        choices = outputs.get("choice")
        if isinstance(choices, list) and choices:
            return str(choices[0])
    return None


def instance(schema: Any, root: Any, depth: int = 0) -> Any:
    """The smallest value `schema` accepts (for the schemas extraction uses: no `not`, no patterns)."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return instance(_resolve(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return instance(schema[key][0], root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part)
        return instance(merged, root, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: instance(sub, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [instance(schema.get("items", {}), root, depth + 1) for _ in range(schema.get("minItems", 0))]
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value: float = (low or 0) + 1 if "exclusiveMinimum" in schema else (low or 0)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return _string(schema)


def _string(schema: dict[str, Any]) -> str:
    formats = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "email": "a@example.com"}
    text = formats.get(schema.get("format", ""), "text")
    return text.ljust(schema.get("minLength", 0), "x")


def _resolve(ref: str, root: Any) -> Any:
    node = root
    for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else []:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node
