"""Every prompt file is its source's string byte for byte (sha256); prompts/SOURCES.md says where each comes from.

The official strings were compared with their repositories' files (commits in SOURCES.md). Final newlines
matter: dots.ocr's layout_all_en.txt, grounding_ocr.txt and dots.mocr's layout_web.txt end with one; no other
file does. LightOnOCR's plain prompt is empty on purpose: its client sends the image and nothing else.
"""

import hashlib
from pathlib import Path

import pytest

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"

DOTS_V1 = {
    "layout_all_en.txt": "16ff71ac5d218f35e5b3db41240b6e70741498bc099db3fa922ce1ff972e3b2f",
    "layout_only_en.txt": "d10f3720942d901f61cd1c313a6ba8305ec5e9674c56907ea92f82ad0d5f5fbf",
    "ocr.txt": "8ee4c4b75c200c7f8877e3344318a5bb2280f3878d42007b2c717b3c46a11865",
    "grounding_ocr.txt": "b18d62ea1e6619773144ba448c1f149ff694f9a8b673472b7706ae67c0f110a9",
}
OFFICIAL_SHA256 = {
    **{f"dots-ocr/{name}": digest for name, digest in DOTS_V1.items()},
    # dots.mocr keeps the four v1 prompts byte for byte and adds two (dots_mocr/utils/prompts.py).
    **{f"dots-mocr/{name}": digest for name, digest in DOTS_V1.items()},
    "dots-mocr/layout_web.txt": "b73be01f5c6f81ab7e206406cab01b08eff8c30d0726face84946ae09970ce20",
    "dots-mocr/scene_spotting.txt": "5dec57c9dbd669545baafce3c40fed998b310df927a7692ba7a9edd506f9d71f",
    # DeepSeek-OCR-2's README prompts after the "<image>\n" the config's prompt_prefix adds.
    "deepseek-ocr-2/document.txt": "2300787a910e06528086e256c39ef7c1798ae699f86e383bbca9caa95845d0ff",
    "deepseek-ocr-2/free_ocr.txt": "984f546c666f69026a5277aad8b42a2c72258003bad817cf412ccd445494b6ae",
    "paddleocr-vl/ocr.txt": "d715a33c90db45b3c55e06be0210b87cbc9d97c0b84dc5d30edc331f8e65e2ff",
    "glm-ocr/text_recognition.txt": "77e8207573e1b8ba857d25db3a5080ae8651d6ddc2ea79007af5ca7958b80017",
    "lightonocr/ocr.txt": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # empty
    "lightonocr/grounding.txt": "a77e39d1098de82a4fa01254f660098a90378b3fb57d2d89a950cbda204be043",
    # GOT-OCR 2.0's processor query for plain OCR, " OCR: " (computed from its f-string).
    "got-ocr2/ocr.txt": "e611526e1e75823bf111eede6aa2d859f0e310f63af295655b25666f457afd32",
    # Written for this project (general VLMs have no official OCR prompt): pinned so a change is deliberate.
    "qwen3-vl-2b/ocr.txt": "ba51b3252e5cfc41880bab79c166f3dca15ccf31ac3d4c64949434ee7d2a00c3",
    "qwen2-vl-2b/ocr.txt": "ba51b3252e5cfc41880bab79c166f3dca15ccf31ac3d4c64949434ee7d2a00c3",
    "phi-3.5-vision/ocr.txt": "ba51b3252e5cfc41880bab79c166f3dca15ccf31ac3d4c64949434ee7d2a00c3",
}


@pytest.mark.parametrize(("path", "sha256"), OFFICIAL_SHA256.items())
def test_prompt_is_byte_identical_to_its_source(path: str, sha256: str) -> None:
    assert hashlib.sha256((PROMPTS / path).read_bytes()).hexdigest() == sha256


def test_every_prompt_file_is_pinned_and_has_a_source() -> None:
    files = {path.relative_to(PROMPTS).as_posix() for path in PROMPTS.rglob("*.txt")}
    assert files == set(OFFICIAL_SHA256)
    sources = (PROMPTS / "SOURCES.md").read_text(encoding="utf-8")
    for folder in {path.split("/")[0] for path in files}:
        assert f"`{folder}/" in sources, folder
