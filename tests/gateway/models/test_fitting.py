"""The memory arithmetic (hand-computed figures) and the fitting of models on one card, with its fixes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.models import memory_model as mm
from gateway.models.config_sections import Architecture
from gateway.models.fitting import PlanOverrides, apply_cheapest_fix, find_fixes, plan_models
from gateway.models.memory_plan import GIB
from gateway.models.registry import ModelConfig, load_registry
from gateway.settings import PROJECT_ROOT

REGISTRY = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")


def configs(*names: str) -> list[ModelConfig]:
    return [REGISTRY[name] for name in names]


# Per model, at its config's settings on a 16 GiB card (activation: max(image tokens, 2048) x 128 KiB;
# overhead: 0.5 context + 0.2 slack + 0.1 + 0.02 x max_num_seqs graphs;
# KV tokens: max_model_len + (max_num_seqs - 1) x max_model_len / 8;
# utilization: (total - 0.5) / 16 rounded up to 0.01).
HAND_COMPUTED = {
    # KV/token 2x28x2x128x2 = 28,672 B. Weights 3.0e9x2x1.02 = 6.12e9 B = 5.6997 GiB.
    # 11,289,600 px / 28² = 14,400 image tokens x 131,072 B = 1.7578 GiB. Overhead 0.5+0.2+0.1+0.16 = 0.96.
    # KV 32,768 + 7x4,096 = 61,440 tokens x 28,672 B = 1.6406 GiB. Total 10.0581 → (9.5581/16 = 0.597) 0.60.
    "dots-ocr": (28_672, 5.6997, 1.7578, 0.96, 1.6406, 10.0581, 0.60),
    # KV/token 2x28x8x128x2 = 114,688 B. Weights 2.1e9x2x1.02 = 4.284e9 B = 3.9898 GiB.
    # 4,194,304 / 32² = 4,096 tokens → 0.5 GiB. KV 16,384 + 7x2,048 = 30,720 x 114,688 B = 3.2813 GiB.
    # Total 8.7311 → (8.2311/16 = 0.514) 0.52.
    "qwen3-vl-2b": (114_688, 3.9898, 0.5, 0.96, 3.2813, 8.7311, 0.52),
    # KV/token 28,672 B. Weights 2.21e9x2x1.02 = 4.5084e9 B = 4.1988 GiB. 1,003,520 / 28² = 1,280 tokens,
    # below the 2,048-token budget → 2,048 x 128 KiB = 0.25 GiB. KV 8,192 + 7x1,024 = 15,360 x 28,672 B =
    # 0.4102 GiB. Total 5.8189 → (5.3189/16 = 0.332) 0.34.
    "qwen2-vl-2b": (28_672, 4.1988, 0.25, 0.96, 0.4102, 5.8189, 0.34),
    # KV/token 2x32x32x96x2 = 393,216 B (384 KiB). Weights 4.15e9x2x1.02 = 8.466e9 B = 7.8846 GiB.
    # 1,806,336 / 28² = 2,304 tokens → 0.2813 GiB. Overhead 0.5+0.2+0.1+0.08 = 0.88.
    # KV 4,096 + 3x512 = 5,632 x 393,216 B = 2.0625 GiB. Total 11.1083 → (10.6083/16 = 0.663) 0.67.
    "phi-3.5-vision": (393_216, 7.8846, 0.2813, 0.88, 2.0625, 11.1083, 0.67),
}


@pytest.mark.parametrize("name", sorted(HAND_COMPUTED))
def test_figures_match_hand_computed_values(name: str) -> None:
    kv_per_token, weights, activation, overhead, kv_cache, total, utilization = HAND_COMPUTED[name]
    model = plan_models(configs(name), 16).models[0]
    assert model.kv_bytes_per_token == kv_per_token
    assert model.weights_gib == pytest.approx(weights, abs=1e-4)
    assert model.activation_gib == pytest.approx(activation, abs=1e-4)
    assert model.overhead_gib == pytest.approx(overhead, abs=1e-9)
    assert model.kv_cache_gib == pytest.approx(kv_cache, abs=1e-4)
    assert model.total_gib == pytest.approx(total, abs=1e-3)
    assert model.gpu_memory_utilization == utilization


def test_models_of_other_engines_have_kv_figures_too() -> None:
    # got-ocr2 (16 KV heads of 64): 2x24x16x64x2 = 98,304 B; moondream2 (fp16, no GQA): 2x24x32x64x2 = 196,608 B.
    assert mm.kv_bytes_per_token(REGISTRY["got-ocr2"], "auto") == 98_304
    assert mm.kv_bytes_per_token(REGISTRY["moondream2"], "auto") == 196_608


def test_llama_server_allocates_every_slot_and_has_no_graphs_or_profiling_reserve() -> None:
    model = plan_models(configs("moondream2"), 12).models[0]
    assert model.kv_cache_gib == pytest.approx(2048 * 2 * 196_608 / GIB)  # -c 2048 x 2 slots, all up front
    assert model.activation_gib == mm.LLAMA_CPP_COMPUTE_GIB
    assert model.overhead_gib == pytest.approx(mm.CUDA_CONTEXT_GIB + mm.RUNTIME_SLACK_GIB)


def test_fp8_weights_halve_the_language_model_only() -> None:
    dots = REGISTRY["dots-ocr"]  # 1.8B language model at 1 byte + 1.2B vision at 2 bytes, + 2 %
    assert mm.weights_gib(dots, "fp8") == pytest.approx((1.8e9 + 2.4e9) * 1.02 / GIB)
    assert mm.weights_gib(dots, "fp8") < mm.weights_gib(dots) * 0.75


def test_fp8_leaves_the_parameters_vllm_does_not_quantize_at_full_width() -> None:
    moondream3 = REGISTRY["moondream3"]  # 0.55B quantized at 1 byte; 0.4B vision + 8.05B MoE experts at 2 bytes
    assert mm.weights_gib(moondream3, "fp8") == pytest.approx((0.55e9 + 16.9e9) * 1.02 / GIB)
    # So fp8 cannot bring it onto either card: the catalogue says it fits neither.
    fp8 = {"moondream3": PlanOverrides(quantization="fp8")}
    for gpu_gib in (12, 16):
        assert not plan_models(configs("moondream3"), gpu_gib, overrides=fp8).fits


def test_an_architecture_whose_parts_exceed_its_total_is_refused() -> None:
    raw = REGISTRY["moondream3"].architecture.model_dump()
    with pytest.raises(ValidationError, match="exceed parameters_b"):
        Architecture.model_validate({**raw, "fp8_unquantized_parameters_b": 8.7})


def test_a_fixed_image_token_budget_caps_the_pixel_count() -> None:
    assert mm.image_tokens(REGISTRY["deepseek-ocr-2"], 3_538_944) == 1121


def test_fp8_eager_and_pixels_shrink_what_they_should() -> None:
    small = PlanOverrides(kv_cache_dtype="fp8", enforce_eager=True, max_pixels=11_289_600 // 4)
    model = plan_models(configs("dots-ocr"), 16, overrides={"dots-ocr": small}).models[0]
    assert model.kv_bytes_per_token == 14_336  # 2x28x2x128x1
    assert model.overhead_gib == pytest.approx(0.7)  # no CUDA graphs
    assert model.activation_gib == pytest.approx(3_600 * 128 * 1024 / GIB)  # 2,822,400 px / 784 = 3,600 tokens


def test_dots_page_floor_is_large() -> None:
    # 14,400 image tokens + 512 prompt + 16,384 default answer.
    assert mm.page_floor(REGISTRY["dots-ocr"], 11_289_600) == 31_296


def test_twelve_gb_holds_dots_and_qwen2_only_with_fp8_a_lossy_fix_that_is_applied() -> None:
    plan = plan_models(configs("dots-ocr", "qwen2-vl-2b"), 12)
    assert not plan.fits
    assert plan.fixes[0].startswith("together: ")
    assert "quantization None→fp8" in plan.fixes[0]
    assert plan.fixes[-1].startswith("drop qwen2-vl-2b")
    settings = {c.name: mm.config_settings(c) for c in configs("dots-ocr", "qwen2-vl-2b")}
    fix = find_fixes(configs("dots-ocr", "qwen2-vl-2b"), settings, 12, plan.headroom_gib)[0]
    assert fix.lossy
    applied = apply_cheapest_fix(configs("dots-ocr", "qwen2-vl-2b"), plan)
    assert applied.fits
    assert applied.applied == plan.fixes[0]
    assert [m.quantization for m in applied.models] == ["fp8", "fp8"]
    # What the fix does not need is given back: dots.ocr keeps its full pixel cap and context.
    assert applied.model("dots-ocr").max_pixels == 11_289_600
    assert applied.model("dots-ocr").max_model_len == 32_768


def test_lossless_fixes_rank_before_lossy_ones() -> None:
    # phi-3.5-vision alone on 10 GiB: fewer sequences or eager mode would not do; fp8 KV and weights each do.
    plan = plan_models(configs("phi-3.5-vision"), 10)
    labels = [fix.split(":")[0] for fix in plan.fixes]
    lossy = [label.startswith("lossy") for label in labels]
    assert lossy == sorted(lossy), labels  # every lossless fix before the first lossy one
    assert any("fp8 weights" in fix and "Marlin" in fix for fix in plan.fixes)


def test_four_models_on_twelve_gb_do_not_fit_and_the_first_fix_does() -> None:
    names = ("dots-ocr", "qwen3-vl-2b", "qwen2-vl-2b", "phi-3.5-vision")
    plan = plan_models(configs(*names), 12)
    assert not plan.fits
    settings = {c.name: mm.config_settings(c) for c in configs(*names)}
    fixes = find_fixes(configs(*names), settings, 12, plan.headroom_gib)
    assert fixes
    assert plan.fixes == tuple(fix.description for fix in fixes)
    fixed = plan_models(configs(*fixes[0].models), 12, overrides=fixes[0].overrides)
    assert fixed.fits


def test_cheapest_fix_comes_first_and_applies() -> None:
    # qwen3 alone on a 9 GiB card: 8.73 GiB does not fit in 8; fewer sequences (the cheapest kind) do.
    plan = plan_models(configs("qwen3-vl-2b"), 9)
    assert not plan.fits
    assert plan.fixes[0].startswith("lower max_num_seqs: qwen3-vl-2b: max_num_seqs 8→")
    config = REGISTRY["qwen3-vl-2b"]
    fix = find_fixes([config], {config.name: mm.config_settings(config)}, 9, plan.headroom_gib)[0]
    assert plan_models([config], 9, overrides=fix.overrides).fits
