"""The two servers one contract is checked against: the stand-in and the real vLLM, for one model.

Both are set up from the same launcher plan (served name, image policy as the plan caps it, one image per
prompt) and the same CPU max_model_len, so every assertion can be the same for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gateway.models.registry import ImagePolicy
from launchers.serve_args import LIMIT_MM_PER_PROMPT
from launchers.vllm_standin import StandinConfig, StandinServer
from tests.real_vllm.vllm_server import CPU_MAX_MODEL_LEN, Launch, RealVllmServer, launcher_plan

# Tokens around each image besides the (h/factor)(w/factor) it is resized to: Qwen2-VL's chat template wraps
# the placeholder in <|vision_start|> and <|vision_end|>; dots.ocr is served with content format "string",
# where vLLM puts <|img|><|imgpad|><|endofimg|> and a newline before a text that lacks them. Qwen3-VL wraps
# like Qwen2-VL, with 32 px per token (16 px patches, 2x2 merge). PaddleOCR-VL's template puts
# <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>, GLM-OCR's <|begin_of_image|><|image|><|end_of_image|>.
IMAGE_OVERHEAD = {"qwen2-vl-2b": 2, "dots-ocr": 3, "qwen3-vl-2b": 2, "paddleocr-vl": 2, "glm-ocr": 2}
# The stand-in's reply is long and paced so a stream lasts long enough to be left mid-way.
STANDIN_REPLY = " ".join(f"word{i}" for i in range(4000))
STANDIN_TOKENS_PER_S = 200.0


@dataclass(frozen=True)
class Backend:
    kind: str  # "standin" or "vllm"
    model: str
    root_url: str
    max_model_len: int
    image_policy: ImagePolicy
    image_overhead: int

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def __str__(self) -> str:
        return f"{self.kind}:{self.model}"


def image_policy(model: str) -> ImagePolicy:
    """The policy the launcher plan serves `model` with (see Launch.image_policy)."""
    config, plan = launcher_plan(model)
    return Launch(config, plan, []).image_policy


@contextmanager
def standin_backend(model: str) -> Iterator[Backend]:
    """A stand-in configured like the real server the launchers would start for `model`."""
    policy = image_policy(model)
    config = StandinConfig(
        models=(model,),
        max_model_len=CPU_MAX_MODEL_LEN,
        reply=STANDIN_REPLY,
        tokens_per_s=STANDIN_TOKENS_PER_S,
        image_policy=policy,
        image_wrapper_tokens=IMAGE_OVERHEAD[model],
        max_images_per_prompt=LIMIT_MM_PER_PROMPT["image"],
    )
    with StandinServer(config) as server:
        yield Backend("standin", model, server.root_url, CPU_MAX_MODEL_LEN, policy, IMAGE_OVERHEAD[model])


def vllm_backend(server: RealVllmServer) -> Backend:
    """The real server as a Backend: its max_model_len and image policy are read from its own argv."""
    argv = server.launch.argv
    max_model_len = int(argv[argv.index("--max-model-len") + 1])
    overhead = IMAGE_OVERHEAD[server.model_name]
    return Backend("vllm", server.model_name, server.root_url, max_model_len, server.launch.image_policy, overhead)
