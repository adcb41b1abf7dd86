"""What one vLLM server needs on the card: the arithmetic behind `python -m launchers plan`.

Facts come from vLLM's documentation and source code; the § marks below name the topic (§0 vLLM defaults,
§1 model sizes and third-party figures, §2 start-up memory profiling, the KV cache and image tokens, §7 several
servers on one GPU). Estimates are marked as such and lean high, because a plan is only useful if the servers
it describes start every time.

Weights
    parameters x dtype bytes (bf16/fp16 2, fp32 4) x (1 + WEIGHT_OVERHEAD). The Hub parameter counts already
    include the embeddings; the 2% covers non-parameter buffers (rotary tables, norms kept in fp32) and the
    allocator's rounding. dots.ocr: 3.0e9 x 2 x 1.02 = 5.70 GiB (third-party figure in §1: ~5.8 GB).

Activation (profiling) reserve
    vLLM's start-up profile runs the vision encoder on the worst-case image(s) and then the language model on
    `max_num_batched_tokens` (MAX_NUM_BATCHED_TOKENS = 2048, the API server's default on < 70 GiB cards, §2.2),
    one after the other, and keeps the larger peak (§2.1 step 2). Estimate:
      encoder = max(image tokens at max_pixels, 2048) x VISION_BYTES_PER_IMAGE_TOKEN (128 KiB)
      language model = 2048 x LM_BYTES_PER_TOKEN (96 KiB)
      activation = max(encoder, language model)
    Image tokens = ceil(max_pixels / image_token_pixels²) (§2.3: one token per 28x28 px on Qwen2-VL/dots.ocr,
    32x32 on Qwen3-VL). The encoder budget is at least the batched-token budget, so small images are profiled
    several at a time. 128 KiB per image token: each token is 2x2 merged patches, and at the peak of one ViT
    layer a patch holds ~16k live bf16 values (residual, norm, q/k/v, the gated MLP's two 4x-wide
    projections): 4 x 16k x 2 B. 96 KiB per LM token: the gate/up/act tensors of a 2-4B MLP (3 x 8960) plus
    attention and residual buffers, x 1.4 for fragmentation. These are estimates. They are why lowering
    max_pixels is the strongest memory control (§2.2, §7: Qwen2-VL's default pixel cap makes start-up OOM).

Overhead
    CUDA_CONTEXT_GIB (0.5): the CUDA context, PyTorch and kernels of the process, the upper half of §2.1's
    "0.3-0.6 GiB per process". vLLM takes its memory snapshot after the context exists, so the context is
    NOT inside --gpu-memory-utilization: it sits on top of it (§2.1 step 1: "the sum of fractions must be
    below 1 minus CUDA-context/driver overhead").
    RUNTIME_SLACK_GIB (0.2): cuBLAS workspaces, lazily loaded kernels and allocator fragmentation, which vLLM
    charges to itself as "non-torch increase" during profiling (§2.1 step 2).
    CUDA graphs: 0 with --enforce-eager, else 0.1 GiB + 0.02 GiB x max_num_seqs (capture sizes go up to about
    2 x max_num_seqs, §2.2). Since v0.21 graphs are estimated during profiling, so they come out of the
    fraction (§0, §2.1 step 3). The figure is an estimate that leans high, as vLLM's own estimator sometimes
    does (#45178).

Quantization (fp8 weights, `--quantization fp8`)
    The language model's weights at 1 byte per parameter, the vision encoder's unchanged (vLLM's online fp8
    quantizes the decoder's linear layers; towers it skips stay at the model dtype, so the estimate leans
    high), and so are the parameters a model keeps outside those layers (`fp8_unquantized_parameters_b`:
    moondream3's MoE experts, plain tensors in vLLM's moondream3.py, 8 of its 9 B). Lossy. Native W8A8 on
    compute capability >= 8.9 (Ada, Hopper, Blackwell); Ampere (8.0/8.6) runs it as weight-only W8A16 through
    the Marlin kernels: the memory saving, no fp8 compute (vllm.md §1.2).

Engines other than vLLM (llama.cpp's llama-server)
    No --gpu-memory-utilization: llama-server allocates the weights, a compute buffer (LLAMA_CPP_COMPUTE_GIB,
    an estimate for a small model with its vision projector) and the KV cache of every slot up front
    (-c = max_model_len x max_num_seqs), plus the CUDA context. Its "fraction" below is only the planner's
    accounting of that footprint; it is not passed to the server.

KV cache
    bytes/token = 2 (K and V) x layers x kv_heads x head_dim x (2 for bf16 "auto", 1 for fp8) (§2.3).
    tokens = max_model_len + (max_num_seqs - 1) x max_model_len / TYPICAL_SHARE (8), rounded up to 16-token
    blocks. vLLM will not start unless one whole max_model_len sequence fits (§2.3). The other sequences are
    planned at an eighth of the cap each, because a typical request (one page or image and its answer) uses
    well under the cap. Under heavier load vLLM queues or preempts; it does not fail.

Page floor
    max_model_len is never planned below what one page needs: image tokens at max_pixels + PROMPT_TOKENS (512)
    + the config's max_completion_tokens. For dots.ocr at its full 11.3 MP cap that is 14,400 + 512 + 16,384 =
    31,296 tokens, so its context can only shrink together with its pixel cap.

Fraction of the card
    gpu_memory_utilization = (total - CUDA context) / card, rounded UP to 0.01 (vLLM's fraction is of TOTAL
    memory, per instance, §2.1). The set fits when Σ(fraction x card + CUDA context) ≤ card - headroom, which
    also keeps Σ fractions ≤ (card - headroom) / card.
    If a vLLM version charges the context to the fraction after all, the KV pool shrinks by the context's
    0.5 GiB. The other sequences' share absorbs that whenever it is at least 0.5 GiB (every committed profile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gateway.models.memory_plan import GIB, ModelPlan, PlanError
from gateway.models.registry import ModelConfig

KiB = 1024
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
WEIGHT_OVERHEAD = 0.02
MAX_NUM_BATCHED_TOKENS = 2048
VISION_BYTES_PER_IMAGE_TOKEN = 128 * KiB
LM_BYTES_PER_TOKEN = 96 * KiB
CUDA_CONTEXT_GIB = 0.5
RUNTIME_SLACK_GIB = 0.2
CUDA_GRAPH_BASE_GIB = 0.1
CUDA_GRAPH_PER_SEQ_GIB = 0.02
TYPICAL_SHARE = 8
KV_BLOCK_TOKENS = 16
PROMPT_TOKENS = 512
LLAMA_CPP_COMPUTE_GIB = 0.4

KvDtype = Literal["auto", "fp8"]
Quantization = Literal["fp8"] | None


@dataclass(frozen=True)
class ServerSettings:
    """The knobs the planner turns for one server."""

    max_model_len: int
    max_num_seqs: int
    enforce_eager: bool
    kv_cache_dtype: KvDtype
    max_pixels: int
    quantization: Quantization = None


def config_settings(config: ModelConfig) -> ServerSettings:
    """The settings in the model's config (a model vLLM cannot serve has none)."""
    if config.serving is None:
        raise PlanError(f"{config.name} has no engine that serves it: {config.unsupported_reason}")
    return ServerSettings(
        max_model_len=config.serving.max_model_len,
        max_num_seqs=config.serving.max_num_seqs,
        enforce_eager=False,
        kv_cache_dtype="auto",
        max_pixels=config.image.max_pixels,
        quantization=config.serving.quantization,
    )


def check_settings(config: ModelConfig, settings: ServerSettings) -> None:
    """PlanError when settings cannot work for this model at all."""
    limit = config.architecture.max_position_embeddings
    if not 1 <= settings.max_model_len <= limit:
        raise PlanError(f"{config.name}: max_model_len {settings.max_model_len} must be within 1..{limit}")
    if settings.max_num_seqs < 1:
        raise PlanError(f"{config.name}: max_num_seqs must be at least 1")
    if not config.image.min_pixels <= settings.max_pixels <= config.image.max_pixels:
        raise PlanError(
            f"{config.name}: max_pixels {settings.max_pixels} must be within the config's "
            f"{config.image.min_pixels}..{config.image.max_pixels}"
        )


def image_tokens(config: ModelConfig, max_pixels: int) -> int:
    """Tokens of one image at the pixel cap (at most the architecture's fixed budget, when it has one)."""
    tokens = math.ceil(max_pixels / config.architecture.image_token_pixels**2)
    fixed = config.architecture.image_tokens_max
    return tokens if fixed is None else min(tokens, fixed)


def page_floor(config: ModelConfig, max_pixels: int) -> int:
    """The smallest max_model_len that holds one image, its prompt and the default answer length."""
    return image_tokens(config, max_pixels) + PROMPT_TOKENS + config.sampling.max_completion_tokens


def kv_bytes_per_token(config: ModelConfig, kv_cache_dtype: KvDtype) -> int:
    """2 x layers x kv_heads x head_dim x dtype bytes."""
    arch = config.architecture
    dtype_bytes = 1 if kv_cache_dtype == "fp8" else DTYPE_BYTES[arch.dtype]
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * dtype_bytes


def weights_gib(config: ModelConfig, quantization: Quantization = None) -> float:
    """Parameters x dtype bytes plus WEIGHT_OVERHEAD; with fp8, the language model at one byte a parameter."""
    arch = config.architecture
    dtype_bytes = DTYPE_BYTES[arch.dtype]
    if quantization == "fp8":
        full_width = arch.vision_parameters_b + arch.fp8_unquantized_parameters_b
        parameter_bytes = (arch.parameters_b - full_width) * 1e9 + full_width * 1e9 * dtype_bytes
    else:
        parameter_bytes = arch.parameters_b * 1e9 * dtype_bytes
    return parameter_bytes * (1 + WEIGHT_OVERHEAD) / GIB


def activation_gib(config: ModelConfig, max_pixels: int) -> float:
    """The profiling peak: the larger of the encoder pass and the language-model pass."""
    if config.engine == "llama.cpp":
        return LLAMA_CPP_COMPUTE_GIB
    encoder_tokens = max(image_tokens(config, max_pixels), MAX_NUM_BATCHED_TOKENS)
    encoder = encoder_tokens * VISION_BYTES_PER_IMAGE_TOKEN
    language = MAX_NUM_BATCHED_TOKENS * LM_BYTES_PER_TOKEN
    return max(encoder, language) / GIB


def overhead_gib(settings: ServerSettings, engine: str | None = "vllm") -> float:
    """CUDA context, runtime slack and CUDA graphs (vLLM's; llama-server's are part of its compute buffer)."""
    graphs = (
        0.0
        if settings.enforce_eager or engine != "vllm"
        else CUDA_GRAPH_BASE_GIB + CUDA_GRAPH_PER_SEQ_GIB * settings.max_num_seqs
    )
    return CUDA_CONTEXT_GIB + RUNTIME_SLACK_GIB + graphs


def kv_tokens(settings: ServerSettings, engine: str | None = "vllm") -> int:
    """One full sequence plus the other sequences at a typical share, in whole 16-token blocks.

    llama-server has no paged pool: every slot's whole context is allocated (-c = max_model_len x slots).
    """
    if engine == "llama.cpp":
        return settings.max_model_len * settings.max_num_seqs
    typical = math.ceil(settings.max_model_len / TYPICAL_SHARE)
    tokens = settings.max_model_len + (settings.max_num_seqs - 1) * typical
    return math.ceil(tokens / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS


def utilization(total_gib: float, gpu_mem_gib: float) -> float:
    """vLLM's fraction of the whole card: everything but the CUDA context, rounded up to 0.01."""
    return math.ceil((total_gib - CUDA_CONTEXT_GIB) / gpu_mem_gib * 100 - 1e-9) / 100


def footprint_gib(model: ModelPlan, gpu_mem_gib: float) -> float:
    """What the server really takes once started: its rounded fraction plus the context outside it."""
    return model.gpu_memory_utilization * gpu_mem_gib + CUDA_CONTEXT_GIB


def model_plan(config: ModelConfig, settings: ServerSettings, gpu_mem_gib: float) -> ModelPlan:
    """One server's needs and its --gpu-memory-utilization on this card."""
    check_settings(config, settings)
    per_token = kv_bytes_per_token(config, settings.kv_cache_dtype)
    weights = weights_gib(config, settings.quantization)
    activation = activation_gib(config, settings.max_pixels)
    overhead = overhead_gib(settings, config.engine)
    kv_cache = kv_tokens(settings, config.engine) * per_token / GIB
    return ModelPlan(
        name=config.name,
        gpu_memory_utilization=utilization(weights + activation + overhead + kv_cache, gpu_mem_gib),
        max_model_len=settings.max_model_len,
        max_num_seqs=settings.max_num_seqs,
        enforce_eager=settings.enforce_eager,
        kv_cache_dtype=settings.kv_cache_dtype,
        max_pixels=settings.max_pixels,
        quantization=settings.quantization,
        weights_gib=weights,
        activation_gib=activation,
        overhead_gib=overhead,
        kv_bytes_per_token=per_token,
        kv_cache_gib=kv_cache,
    )


def default_headroom_gib(gpu_mem_gib: float) -> float:
    """Memory left free: max(1.0, 7.5% of the card). That is 1.0 GiB on 12 GB and 1.2 on 16.

    It covers the driver and a desktop (0.3-0.5 GiB when the card drives a display), vLLM's approximate
    profiling (§7, RFC #27951), and a "16 GB" card whose nvidia-smi total is 15.99 GiB.
    """
    return max(1.0, round(0.075 * gpu_mem_gib, 2))
