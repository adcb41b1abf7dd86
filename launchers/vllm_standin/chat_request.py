"""Validation of a chat completion request as vLLM does it, and the simulated token counts.

Token counts are a simulation: a prompt "token" is a whitespace-separated word of text, plus
`image_tokens` (256 by default) per image; a reply token is a word with its trailing spaces.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from .config import StandinConfig

_TOKEN_RE = re.compile(r"\s*\S+\s*")
# The message pydantic gives for each error type vLLM's validation handler prints.
_PYDANTIC_MESSAGES = {
    "missing": "Field required",
    "list_type": "Input should be a valid list",
    "dict_type": "Input should be a valid dictionary",
    "string_type": "Input should be a valid string",
    "bool_type": "Input should be a valid boolean",
    "int_type": "Input should be a valid integer",
    "json_invalid": "JSON decode error",
    "model_attributes_type": "Input should be a valid dictionary or object to extract fields from",
    "value_error": "Value error, {}",
}


class RequestError(Exception):
    """A request vLLM would refuse before generating: rendered as its error body."""

    def __init__(self, status: int, message: str, err_type: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.param = param


@dataclass(frozen=True)
class ChatRequest:
    """What the stand-in needs from a valid chat completion request."""

    stream: bool
    include_usage: bool
    continuous_usage: bool
    prompt_tokens: int
    max_tokens: int  # the generation cap: the request's, or what is left of the context


def split_tokens(text: str) -> list[str]:
    """Simulated tokenizer: word pieces keeping their whitespace, so they join back to `text`."""
    tokens: list[str] = _TOKEN_RE.findall(text)
    return tokens if tokens or not text else [text]


def validation_error(kind: str, loc: str, value: object, reason: str = "") -> RequestError:
    """A pydantic validation error as vLLM renders it: 400, type "Bad Request", `param` = loc."""
    msg = _PYDANTIC_MESSAGES[kind].format(reason)
    detail = {"type": kind, "loc": loc, "msg": msg, "input": _summarize(value)}
    return RequestError(400, f"1 validation error:\n  {detail}", "Bad Request", loc)


def parse_chat_request(body: object, config: StandinConfig) -> ChatRequest:
    """Check `body` in vLLM's order (schema, model, images, context length); raise RequestError."""
    if not isinstance(body, dict):
        raise validation_error("model_attributes_type", "body", body)
    if "messages" not in body:
        raise validation_error("missing", "body.messages", body)
    messages = body["messages"]
    if not isinstance(messages, list):
        raise validation_error("list_type", "body.messages", messages)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise validation_error("string_type", "body.model", model)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise validation_error("bool_type", "body.stream", stream)
    cap = _max_tokens(body)
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise validation_error("dict_type", "body.stream_options", stream_options)
    if stream_options and not stream:  # vLLM's validator tests truthiness: `{}` passes
        reason = "Stream options can only be defined when stream is true."
        raise validation_error("value_error", "body", body, reason)

    if model and model not in config.models:
        raise RequestError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
    if cap is not None and cap < 1:
        raise RequestError(400, f"max_tokens must be at least 1, got {cap}.", "BadRequestError", "max_tokens")

    prompt_tokens = count_prompt_tokens(messages, config.image_tokens)
    requested = cap if cap is not None else 1  # vLLM needs room for one token at least
    if prompt_tokens + requested > config.max_model_len:
        raise RequestError(
            400,
            f"This model's maximum context length is {config.max_model_len} tokens. However, you "
            f"requested {requested} output tokens and your prompt contains {prompt_tokens} input "
            f"tokens, for a total of {prompt_tokens + requested} tokens. Please reduce the length of "
            "the input prompt or the number of requested output tokens.",
            "BadRequestError",
            "input_tokens",
        )
    # vLLM treats include_usage as true whenever a stream_options object is sent.
    include_usage = stream_options is not None and bool(stream_options.get("include_usage", True))
    continuous = include_usage and bool(stream_options and stream_options.get("continuous_usage_stats"))
    return ChatRequest(
        stream=bool(stream),
        include_usage=include_usage,
        continuous_usage=continuous,
        prompt_tokens=prompt_tokens,
        max_tokens=cap if cap is not None else config.max_model_len - prompt_tokens,
    )


def count_prompt_tokens(messages: list[Any], image_tokens: int) -> int:
    """Words in the text parts plus `image_tokens` per image; checks each image URL."""
    words = 0
    images = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise validation_error("dict_type", f"body.messages.{i}", message)
        if "role" not in message:
            raise validation_error("missing", f"body.messages.{i}.role", message)
        content = message.get("content")
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict):
                    raise validation_error("dict_type", f"body.messages.{i}.content.{j}", part)
                kind = part.get("type")
                if kind == "text" and isinstance(part.get("text"), str):
                    words += len(part["text"].split())
                elif kind == "image_url":
                    _check_image(part.get("image_url"), f"body.messages.{i}.content.{j}.image_url")
                    images += 1
    return words + images * image_tokens


def _check_image(image_url: object, loc: str) -> None:
    # vLLM accepts the OpenAI object form and a bare string. Remote and file URLs are not
    # fetched here (the stand-in has no image pipeline); data URLs must really decode.
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise validation_error("string_type" if url is not None else "missing", f"{loc}.url", url)
    if not url.startswith("data:"):
        return
    header, comma, data = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise RequestError(400, "Invalid image: only base64 data URLs are supported.", "BadRequestError")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(
            400, f"Failed to load image from data URL: invalid base64 data ({exc}).", "BadRequestError"
        ) from exc
    if not decoded:
        raise RequestError(400, "Failed to load image from data URL: the image is empty.", "BadRequestError")


def _max_tokens(body: dict[str, Any]) -> int | None:
    # vLLM prefers max_completion_tokens and falls back to the deprecated max_tokens.
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise validation_error("int_type", f"body.{name}", value)
        return value
    return None


def _summarize(value: object) -> object:
    # Like vLLM's validation handler: containers are described, never echoed whole.
    if isinstance(value, list | tuple | dict):
        return f"<{type(value).__name__} of {len(value)} items>"
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "...[truncated]"
    return value
