"""How much a page may answer: the output budget the upstream's context leaves after the page and its prompt."""

from __future__ import annotations

from PIL import Image

from gateway.documents.images.prepare import PageGeometry, PreparedImage
from gateway.documents.page import output_budget
from gateway.models.memory_model import PROMPT_TOKENS
from gateway.models.registry import load_registry
from gateway.settings import Settings
from gateway.upstream.circuit_breaker import CircuitBreaker
from gateway.upstream.served_models import ServedModel, Upstream


def _served(name: str, max_model_len: int | None) -> ServedModel:
    settings = Settings()
    config = load_registry(settings.model_configs_dir, settings.prompts_dir)[name]
    upstream = Upstream("http://a:8000/v1", healthy=True, breaker=CircuitBreaker(threshold=3))
    upstream.max_model_len = max_model_len
    return ServedModel(config, (upstream,))


def _page(model_size: tuple[int, int]) -> PreparedImage:
    image = Image.new("RGB", model_size, "white")
    return PreparedImage(image=image, geometry=PageGeometry(model_size, model_size), png=b"")


def test_the_budget_is_what_the_context_leaves_after_the_page_and_its_prompt() -> None:
    # dots.ocr: one token per 28x28 px of the page as sent.
    model = _served("dots-ocr", 32_768)
    page = _page((1708, 2240))  # 61 x 80 = 4,880 image tokens
    assert output_budget(16_384, model, page) == 16_384
    assert output_budget(30_000, model, page) == 32_768 - 4_880 - PROMPT_TOKENS


def test_the_configs_cap_stands_until_the_upstream_reports_its_length() -> None:
    assert output_budget(16_384, _served("dots-ocr", None), _page((1708, 2240))) == 16_384


def test_a_model_with_fixed_resolution_modes_spends_at_most_its_image_token_budget() -> None:
    # DeepSeek-OCR-2's factor is 1 (vLLM tiles the page itself): counted as w x h, a 1635x2164 page would be
    # 3.5 M tokens and leave 1 token to answer in. It costs 1,121 tokens (the real vLLM counted exactly that).
    model = _served("deepseek-ocr-2", 8192)
    assert model.config.architecture.image_tokens_max == 1121
    assert output_budget(6144, model, _page((1635, 2164))) == 6144
    assert output_budget(8000, model, _page((1635, 2164))) == 8192 - 1121 - PROMPT_TOKENS
