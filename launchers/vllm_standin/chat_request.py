"""Validation of a chat completion request as vLLM does it, and the simulated token counts.

Token counts are a simulation: a prompt "token" is a whitespace-separated word of text, plus per image
either the model's smart-resize arithmetic (`image_policy`, as vLLM counts) or a fixed `image_tokens`; a
reply token is a word with its trailing spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .config import StandinConfig
from .images import image_prompt_tokens, load_data_url
from .request_errors import RequestError, parameter_error, validation_error

__all__ = ["ChatRequest", "RequestError", "parse_chat_request", "split_tokens", "validation_error"]

_TOKEN_RE = re.compile(r"\s*\S+\s*")


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
        aliases = ", ".join(config.models)
        raise RequestError(
            404, f"The model `{model}` does not exist. Valid aliases: {aliases}.", "NotFoundError", "model"
        )
    if cap is not None and cap < 1:
        raise parameter_error(f"max_tokens must be at least 1, got {cap}.", "max_tokens", cap)
    if cap is not None and cap > config.max_model_len:
        raise parameter_error(
            f"max_tokens={cap} cannot be greater than max_model_len={config.max_model_len}. "
            "Please request fewer output tokens.",
            "max_tokens",
            cap,
        )

    prompt_tokens = count_prompt_tokens(messages, config)
    if prompt_tokens > config.max_model_len:
        # vLLM's tokenizer stops at max_model_len + 1 tokens, so that is the count it reports.
        counted = min(prompt_tokens, config.max_model_len + 1)
        qualifier = "at least " if counted == config.max_model_len + 1 else ""
        raise parameter_error(
            f"This model's maximum context length is {config.max_model_len} tokens. However, your prompt "
            f"contains {qualifier}{counted} input tokens, which exceeds this limit even without any output "
            "tokens. Please reduce the length of the input prompt.",
            "input_tokens",
            counted,
        )
    # A prompt that fits with a cap that does not is no error: generation stops at the context, "length".
    room = config.max_model_len - prompt_tokens
    # vLLM treats include_usage as true whenever a stream_options object is sent.
    include_usage = stream_options is not None and bool(stream_options.get("include_usage", True))
    continuous = include_usage and bool(stream_options and stream_options.get("continuous_usage_stats"))
    return ChatRequest(
        stream=bool(stream),
        include_usage=include_usage,
        continuous_usage=continuous,
        prompt_tokens=prompt_tokens,
        max_tokens=min(cap, room) if cap is not None else room,
    )


def count_prompt_tokens(messages: list[Any], config: StandinConfig) -> int:
    """Words in the text parts plus each image's tokens; checks and decodes each image URL."""
    words = 0
    image_tokens = 0
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
                    url = _image_url(part.get("image_url"), f"body.messages.{i}.content.{j}.image_url")
                    images += 1
                    if config.max_images_per_prompt is not None and images > config.max_images_per_prompt:
                        raise parameter_error(
                            f"At most {config.max_images_per_prompt} image(s) may be provided in one prompt.",
                            "image",
                        )
                    image_tokens += image_prompt_tokens(
                        load_data_url(url), config.image_policy, config.image_tokens, config.image_wrapper_tokens
                    )
    return words + image_tokens


def _image_url(image_url: object, loc: str) -> str:
    # vLLM accepts the OpenAI object form and a bare string. Remote and file URLs are not fetched here.
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise validation_error("string_type" if url is not None else "missing", f"{loc}.url", url)
    return url


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
