"""Request bodies used by the benchmark, written to files so wrk and the SSE client send identical bytes."""

from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass
from pathlib import Path

import orjson
from PIL import Image

MODEL = "qwen3-vl-2b"
# ~20 words: big enough to look like a real short answer, small enough to keep the upstream cheap.
REPLY = "The quick brown fox jumps over the lazy dog while seven wizards quietly box jugs of liquor near the old mill"

_CHAT: dict[str, object] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 16,
}


@dataclass(frozen=True)
class Bodies:
    chat: Path
    stream: Path
    image: Path
    image_png_bytes: int  # size of the PNG before base64
    image_body_bytes: int  # size of the whole JSON request body


def random_png(target_b64_bytes: int, seed: int = 1234) -> bytes:
    """A PNG whose base64 is about `target_b64_bytes` long.

    Random pixels make zlib useless, so PNG size ~= 3 bytes per RGB pixel and the gateway really
    has to move ~1 MB; a seeded RNG keeps the body identical across runs.
    """
    side = int(((target_b64_bytes * 3 / 4) / 3) ** 0.5)
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # level does not matter for noise; 1 is fastest
    return buf.getvalue()


def write_bodies(folder: Path, image_b64_bytes: int = 1_000_000) -> Bodies:
    folder.mkdir(parents=True, exist_ok=True)
    chat = folder / "chat.json"
    stream = folder / "stream.json"
    image = folder / "image.json"
    chat.write_bytes(orjson.dumps(_CHAT))
    stream.write_bytes(orjson.dumps({**_CHAT, "stream": True}))
    png = random_png(image_b64_bytes)
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    image_req = {
        "model": MODEL,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Transcribe the text in this image."},
                    {"type": "image_url", "image_url": {"url": data_uri}},
                ],
            }
        ],
        "max_tokens": 16,
    }
    image.write_bytes(orjson.dumps(image_req))
    return Bodies(
        chat=chat,
        stream=stream,
        image=image,
        image_png_bytes=len(png),
        image_body_bytes=image.stat().st_size,
    )
