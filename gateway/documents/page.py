"""One page through a document task: ask the model, validate and repair its answer, retry when it is unusable.

The request has the official clients' shape (one user message: the image as a PNG data URL, then the prompt
behind the model's `prompt_prefix`, no system message; no text part at all when the prompt is empty, as
LightOnOCR's client sends); prompts, prefix, sampling, vLLM extras, the reader of the answer and the retry
temperatures all come from the model's config. Document requests carry the config's `repetition_detection`,
so vLLM itself ends a looping answer (finish_reason "repetition", stop_reason "repetition_detected"); such an
attempt is retried at the next temperature like an invalid one, and counted. A page whose answer stays invalid
after the last retry is `degraded`, with the best cleaned text: never a 500.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from gateway.documents.images.prepare import PreparedImage, crop_png_data_url
from gateway.documents.output.layout import LayoutElement, LayoutParse
from gateway.documents.output.markdown import layout_markdown
from gateway.documents.output.readers import answer_space, read_boxes, read_markdown, strip_markers, to_page
from gateway.documents.request import Box, DocumentOptions
from gateway.errors import InvalidRequest, UpstreamProtocolError
from gateway.models.catalog import LAYOUT_MODES
from gateway.models.memory_model import PROMPT_TOKENS
from gateway.models.registry import ModelConfig, PromptKey
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_id import current_request_id
from gateway.upstream.client import UpstreamClient
from gateway.upstream.served_models import ServedModel

DocumentTask = Literal["ocr", "layout"]
PageStatus = Literal["ok", "repaired", "degraded", "failed"]
_HEADERS = {"Content-Type": "application/json"}
# vLLM's finish_reason when `repetition_detection` ended the answer (vllm/v1/engine FinishReason.REPETITION).
REPETITION_FINISH = "repetition"
_LAYOUT_PROMPTS = LAYOUT_MODES


@dataclass(frozen=True)
class Completion:
    """What one chat completion returned."""

    content: str
    finish_reason: str | None
    usage: dict[str, int]
    stop_reason: str | int | None = None


@dataclass
class PageResult:
    """A page's outcome; `elements` are in original-image pixels."""

    status: PageStatus
    attempts: int
    finish_reason: str | None
    elements: list[LayoutElement]
    markdown: str
    markdown_no_headers: str
    usage: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    upstream_ms: float = 0.0
    fallback: str | None = None  # "pdf_text" when the page's embedded text replaced a degraded answer


async def run_page(
    client: UpstreamClient,
    model: ServedModel,
    task: DocumentTask,
    image: PreparedImage,
    options: DocumentOptions,
    metrics: GatewayMetrics,
) -> PageResult:
    """Run `task` on one prepared image, retrying with the configured temperature schedule."""
    prompt, key = _prompt(model, task, image, options)
    sampling = model.config.sampling
    first = sampling.temperature if options.temperature is None else options.temperature
    requested = min(options.max_completion_tokens or sampling.max_completion_tokens, sampling.max_completion_tokens_cap)
    max_tokens = output_budget(requested, model, image)
    data_url = image.data_url()  # base64 of a ~1.5 MB PNG: once per page, not once per attempt
    best: PageResult | None = None
    usage: dict[str, int] = {}
    upstream_ms = 0.0
    attempts = 0
    for temperature in [first, *sampling.retry_temperatures]:
        attempts += 1
        started = time.perf_counter()
        completion = await _complete(client, model, data_url, prompt, temperature, options.top_p, max_tokens)
        upstream_ms += (time.perf_counter() - started) * 1000
        for name, value in completion.usage.items():
            usage[name] = usage.get(name, 0) + value
        looped = completion.finish_reason == REPETITION_FINISH
        if looped:
            metrics.repetition_stops.labels(model.name, task).inc()
        result = await asyncio.to_thread(_judge, completion, image, model.config, key, options)
        # A usable answer ends the retries; among the rest, keep a usable one, else the one with the most text.
        if best is None or _rank(result) > _rank(best):
            best = result
        if result.status != "degraded" and not looped:
            break
    assert best is not None
    best.attempts, best.usage, best.upstream_ms = attempts, usage, upstream_ms
    _count(metrics, model.name, task, best, usage)
    return best


def output_budget(requested: int, model: ServedModel, image: PreparedImage) -> int:
    """At most the output the upstream's context leaves after this page and its prompt.

    A server started with a shorter `--max-model-len` than the config's answer length refuses every page
    (400 `max_tokens ... cannot be greater than max_model_len`, or over the context on older vLLM). Image
    tokens are exact for the page as sent, (w / factor) · (h / factor), capped by the architecture's fixed
    budget when it has one: DeepSeek-OCR-2's factor is 1 (pages go out unresampled; vLLM tiles them) and it
    spends at most 1,121 tokens on any page, where w · h would leave every page a budget of 1 token. The
    prompt's text gets the planner's allowance. Until the upstream has reported its length, the config's own
    cap stands.
    """
    context = model.max_model_len
    if context is None:
        return requested
    width, height = image.geometry.model
    factor = model.image.factor
    image_tokens = (width // factor) * (height // factor)
    fixed = model.config.architecture.image_tokens_max
    if fixed is not None:
        image_tokens = min(image_tokens, fixed)
    return max(1, min(requested, context - image_tokens - PROMPT_TOKENS))


def layout_prompt(model: ServedModel, mode: str) -> PromptKey:
    """The prompt of a layout mode; 400 naming `mode` when the model has none for it."""
    key = _LAYOUT_PROMPTS[mode]
    if key not in model.prompts:
        offered = [name for name, prompt in _LAYOUT_PROMPTS.items() if prompt in model.prompts]
        raise InvalidRequest(f"model {model.name} offers layout modes {offered}, not {mode!r}", param="mode")
    return key


def _rank(result: PageResult) -> tuple[bool, bool, int]:
    """Usable beats degraded, a finished answer beats one the server cut for looping, then more text wins."""
    return result.status != "degraded", result.finish_reason != REPETITION_FINISH, len(result.markdown)


def _prompt(
    model: ServedModel, task: DocumentTask, image: PreparedImage, options: DocumentOptions
) -> tuple[str, PromptKey]:
    """The text part of the request (may be empty: image only), and the key of the prompt it came from."""
    config = model.config
    if task == "layout":
        key = layout_prompt(model, options.mode)
        return config.prompt_prefix + model.prompts[key], key
    if options.bbox is None:
        return config.prompt_prefix + model.prompts["ocr"], "ocr"
    if "grounding" not in config.tasks or config.grounding_box_format is None:
        raise InvalidRequest(
            f"model {model.name} cannot read a region (`bbox`): it has no grounding task", param="bbox"
        )
    _check_inside(options.bbox, image)
    x1, y1, x2, y2 = image.geometry.to_model(options.bbox)
    box = config.grounding_box_format.format(x1=x1, y1=y1, x2=x2, y2=y2)
    return config.prompt_prefix + model.prompts["grounding"] + box, "grounding"


def _check_inside(bbox: Box, image: PreparedImage) -> None:
    width, height = image.geometry.original
    if bbox[2] > width or bbox[3] > height:
        raise InvalidRequest(f"`bbox` {list(bbox)} lies outside the {width}x{height} image", param="bbox")


async def _complete(
    client: UpstreamClient,
    model: ServedModel,
    data_url: str,
    prompt: str,
    temperature: float,
    top_p: float | None,
    max_tokens: int,
) -> Completion:
    sampling = model.config.sampling
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": data_url}}]
    if prompt:
        content.append({"type": "text", "text": prompt})
    body: dict[str, Any] = {
        **sampling.extra_body,
        "model": model.name,
        "messages": [{"role": "user", "content": content}],
        "temperature": temperature,
        "top_p": sampling.top_p if top_p is None else top_p,
        "max_completion_tokens": max_tokens,
    }
    if sampling.repetition_detection is not None:
        body["repetition_detection"] = sampling.repetition_detection.model_dump()
    # vLLM takes X-Request-Id as its own request id, and the pages of one document run at once: each call gets
    # the document request's id (a job's: the request that submitted it) plus a suffix of its own.
    request_id = current_request_id()
    if request_id is not None:
        headers = {**_HEADERS, "X-Request-Id": f"{request_id}-{secrets.token_hex(4)}"}
    else:
        headers = _HEADERS
    raw = await client.fetch(model, "/chat/completions", orjson.dumps(body), headers)
    return _completion(model.name, raw)


def _completion(model: str, raw: bytes) -> Completion:
    try:
        data: Any = orjson.loads(raw)
        choice = data["choices"][0]
        content = choice["message"]["content"] or ""
        usage = {k: v for k, v in (data.get("usage") or {}).items() if isinstance(v, int)}
        return Completion(str(content), choice.get("finish_reason"), usage, choice.get("stop_reason"))
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        raise UpstreamProtocolError(f"model {model}: the answer is not a chat completion") from None


def _judge(
    completion: Completion, image: PreparedImage, config: ModelConfig, key: PromptKey, options: DocumentOptions
) -> PageResult:
    """Validate and repair one answer with the reader the config names (CPU work: runs in a worker thread)."""
    raw = strip_markers(completion.content, tuple(config.strip_markers))
    reader = config.reader(key)
    cut_short = completion.finish_reason in ("length", REPETITION_FINISH)
    if reader == "markdown":
        text = read_markdown(raw)
        status: PageStatus = "ok" if text == raw.strip() else "repaired"
        if not text:
            status = "degraded"
        if cut_short and status == "ok":
            status = "repaired"
        return PageResult(status, 0, completion.finish_reason, [], text, text)
    space = answer_space(image.geometry, config.box_grid)
    with_text = key != "layout_detect"
    parsed = read_boxes(reader, raw, space=space, with_text=with_text, labels=config.box_labels)
    return _layout_page(parsed, completion, image, config.box_grid, options)


def _layout_page(
    parsed: LayoutParse, completion: Completion, image: PreparedImage, grid: int | None, options: DocumentOptions
) -> PageResult:
    if parsed.status == "invalid":
        text = parsed.cleaned_text
        return PageResult(
            "degraded", 0, completion.finish_reason, [], text, text, repairs=parsed.repairs, dropped=parsed.dropped
        )
    elements = to_page(parsed.elements, image.geometry, grid)
    picture = None
    if options.picture_crops:

        def picture(element: LayoutElement) -> str:
            try:
                return f"![{element.category}]({crop_png_data_url(image, element.bbox)})"
            except ValueError:  # a box with no area left after clamping: keep the plain reference
                return layout_markdown([element], skip_headers_footers=False)

    cut_short = completion.finish_reason in ("length", REPETITION_FINISH)
    status: PageStatus = "ok" if parsed.status == "ok" and not cut_short else "repaired"
    return PageResult(
        status,
        0,
        completion.finish_reason,
        elements,
        layout_markdown(elements, skip_headers_footers=False, picture=picture),
        layout_markdown(elements, skip_headers_footers=True, picture=picture),
        repairs=parsed.repairs,
        dropped=parsed.dropped,
    )


def _count(metrics: GatewayMetrics, model: str, task: str, page: PageResult, usage: dict[str, int]) -> None:
    metrics.pages.labels(model, task, page.status).inc()
    metrics.page_attempts.labels(model, task).observe(page.attempts)
    for kind, count in page.repairs.items():
        metrics.layout_repairs.labels(model, kind).inc(count)
    for reason, count in page.dropped.items():
        metrics.layout_dropped.labels(model, reason).inc(count)
    metrics.output_tokens.labels(model, task).inc(usage.get("completion_tokens", 0))
