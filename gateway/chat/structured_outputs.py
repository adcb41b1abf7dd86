"""vLLM's removed `guided_*` request fields, rewritten to `structured_outputs` so they still constrain the answer.

vLLM 0.12 removed `guided_json`, `guided_regex`, `guided_choice` and `guided_grammar` (and the per-request
`guided_decoding_backend`). It accepts unknown fields and ignores them, so a client written for an older vLLM gets
HTTP 200 and unconstrained text: the worst failure, a silent one. The gateway rewrites them to the current
spelling, `structured_outputs: {"json" | "regex" | "choice" | "grammar": ...}`, rather than refusing them: the
client's intent is unambiguous and the answer it gets is the one it asked for. What cannot be rewritten without
guessing (two constraints at once, or guided_* beside `structured_outputs` or a `response_format` schema) is a 400
naming the field. Only requests carrying one of these keys come here; every other body is forwarded untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import InvalidRequest
from gateway.http.request_body import json_type

# Old field -> its key inside `structured_outputs`.
GUIDED_FIELDS = {"guided_json": "json", "guided_regex": "regex", "guided_choice": "choice", "guided_grammar": "grammar"}
# Server-side settings now (`--structured-outputs-config`): dropped, never forwarded to be ignored.
_DROPPED = ("guided_decoding_backend", "guided_whitespace_pattern")
GUIDED_KEYS = frozenset((*GUIDED_FIELDS, *_DROPPED))


def rewrite_guided_fields(data: dict[str, Any]) -> bytes:
    """The body with its `guided_*` fields moved to `structured_outputs`; InvalidRequest naming the field."""
    present = [field for field in GUIDED_FIELDS if field in data]
    if len(present) > 1:
        raise InvalidRequest(
            f"`{present[1]}`: only one of {', '.join(present)} can constrain an answer", param=present[1]
        )
    if present:
        [field] = present
        if "structured_outputs" in data:
            raise InvalidRequest(
                f"`{field}` and `structured_outputs` both constrain the answer: send `structured_outputs` alone",
                param=field,
            )
        response_format = data.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") in ("json_schema", "json_object"):
            raise InvalidRequest(
                f"`{field}` and `response_format` both constrain the answer: send one of them", param=field
            )
        value = data.pop(field)
        _check_type(field, value)
        data["structured_outputs"] = {GUIDED_FIELDS[field]: value}
    for field in _DROPPED:
        data.pop(field, None)
    return orjson.dumps(data)


def _check_type(field: str, value: Any) -> None:
    kind = GUIDED_FIELDS[field]
    if kind == "json":
        valid = isinstance(value, dict | str)  # vLLM takes a schema object or its JSON text
        expected = "a JSON schema (an object, or its JSON text)"
    elif kind == "choice":
        valid = isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)
        expected = "a non-empty array of strings"
    else:
        valid = isinstance(value, str) and bool(value)
        expected = "a non-empty string"
    if not valid:
        raise InvalidRequest(
            f"`{field}` must be {expected}, not {json_type(value)} (it becomes structured_outputs.{kind})",
            param=field,
        )
