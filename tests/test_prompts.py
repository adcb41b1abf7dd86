"""The dots.ocr prompts must be the official strings byte for byte (sha256 from dots_ocr/utils/prompts.py)."""

import hashlib
from pathlib import Path

import pytest

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"

OFFICIAL_SHA256 = {
    "dots-ocr/layout_all_en.txt": "16ff71ac5d218f35e5b3db41240b6e70741498bc099db3fa922ce1ff972e3b2f",
    "dots-ocr/layout_only_en.txt": "d10f3720942d901f61cd1c313a6ba8305ec5e9674c56907ea92f82ad0d5f5fbf",
    "dots-ocr/ocr.txt": "8ee4c4b75c200c7f8877e3344318a5bb2280f3878d42007b2c717b3c46a11865",
    "dots-ocr/grounding_ocr.txt": "b18d62ea1e6619773144ba448c1f149ff694f9a8b673472b7706ae67c0f110a9",
}


@pytest.mark.parametrize(("path", "sha256"), OFFICIAL_SHA256.items())
def test_dots_ocr_prompt_is_byte_identical_to_the_official_one(path: str, sha256: str) -> None:
    assert hashlib.sha256((PROMPTS / path).read_bytes()).hexdigest() == sha256
