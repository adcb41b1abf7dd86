"""One annotation: ask a model for JSON constrained to a schema, check it, retry once, or say why it failed.

vLLM's structured outputs make the model's tokens follow the schema, but they do not make an answer complete: a
constrained model can loop (whitespace until `max_tokens`, seen on vLLM's CPU build at temperature 0) and stop
mid-object. So every answer is parsed and validated with `jsonschema`; an invalid one is asked for once more at
the model's own sampling temperature, and a second failure is reported in the answer (`Annotation.error`), never
replaced by a guess. An upstream failure is reported the same way: the OCR the client asked for still stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from referencing.exceptions import Unresolvable

from gateway.errors import GatewayError, UpstreamProtocolError
from gateway.extraction.annotation_format import AnnotationFormat
from gateway.observability.request_id import current_request_id
from gateway.upstream.client import UpstreamClient
from gateway.upstream.served_models import ServedModel

ATTEMPTS = 2
_HEADERS = {"Content-Type": "application/json"}
_SYSTEM = (
    "You extract information from documents. Answer with one JSON value that follows the given JSON schema; "
    "use only what the document shows, and null or an empty value where it does not say."
)


@dataclass(frozen=True)
class Annotation:
    """The validated value, or the reason there is none (`error`: message, code, attempts)."""

    value: Any
    error: dict[str, Any] | None
    attempts: int

    def text(self) -> str | None:
        """The value as JSON text (Mistral's `document_annotation` / `image_annotation` are strings)."""
        return None if self.error is not None else orjson.dumps(self.value).decode()


async def annotate(
    client: UpstreamClient,
    model: ServedModel,
    annotation_format: AnnotationFormat,
    *,
    instruction: str,
    image_data_url: str | None,
    max_tokens: int,
) -> Annotation:
    """Fill `annotation_format` from the image and/or the text in `instruction`."""
    content: list[dict[str, Any]] = []
    if image_data_url is not None:
        content.append({"type": "image_url", "image_url": {"url": image_data_url}})
    content.append({"type": "text", "text": instruction})
    sampling = model.config.sampling
    body = orjson.dumps(
        {
            "model": model.name,
            "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": content}],
            "response_format": annotation_format.response_format(),
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_completion_tokens": min(max_tokens, sampling.max_completion_tokens_cap),
        }
    )
    request_id = current_request_id()
    headers = _HEADERS if request_id is None else {**_HEADERS, "X-Request-Id": request_id}
    problem: dict[str, Any] = {}
    for attempt in range(1, ATTEMPTS + 1):
        try:
            raw = await client.fetch(model, "/chat/completions", body, headers)
            problem = _judge(raw, model.name, annotation_format)
        except GatewayError as exc:
            return Annotation(
                None, _error(f"model {model.name} failed: {exc.message}", "annotation_failed", attempt), attempt
            )
        problem = _judge(raw, model.name, annotation_format)
        if "value" in problem:
            return Annotation(problem["value"], None, attempt)
    return Annotation(None, _error(problem["message"], problem["code"], ATTEMPTS), ATTEMPTS)


def _judge(raw: bytes, model: str, annotation_format: AnnotationFormat) -> dict[str, Any]:
    """{"value": ...} for a valid answer, else {"message", "code"} saying what was wrong."""
    try:
        data: Any = orjson.loads(raw)
        choice = data["choices"][0]
        content = choice["message"]["content"] or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise UpstreamProtocolError(f"model {model}: the answer is not a chat completion") from None
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        if choice.get("finish_reason") == "length":
            return {
                "message": "the answer was cut off at the output token limit before the JSON ended",
                "code": "annotation_truncated",
            }
        return {"message": "the answer is not JSON", "code": "annotation_invalid"}
    try:
        error = next(iter(annotation_format.validator.iter_errors(value)), None)
    except Unresolvable as exc:  # a local `$ref` to nothing: check_schema cannot see it, validation can
        return {"message": f"the schema cannot be applied: {exc}", "code": "annotation_schema_unresolvable"}
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(the top)"
        return {
            "message": f"the answer does not follow the schema at {where}: {error.message}",
            "code": "annotation_invalid",
        }
    return {"value": value}


def _error(message: str, code: str, attempts: int) -> dict[str, Any]:
    return {"message": message, "code": code, "attempts": attempts}
