"""Random dots.ocr weights under the hub checkpoint's parameter names (run by build.py in the vLLM venv).

transformers has no DotsOCR model class (the hub ships modeling code we do not have), so the names and
shapes are written out: the language model is a Qwen2 (`model.*`, `lm_head.weight`, taken from
transformers' Qwen2ForCausalLM), the vision tower's names are those vLLM's DotsOCRForCausalLM loads
(vllm/model_executor/models/dots_ocr.py: `attn.qkv`, `mlp.fc1`/`fc3` stacked into fc13, `fc2`, ...).
vLLM refuses a checkpoint with a missing or unknown parameter, so serving it checks this list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM


def vision_shapes(vision: Any) -> dict[str, tuple[int, ...]]:
    embed, inter, patch = vision.embed_dim, vision.intermediate_size, vision.patch_size
    merged = embed * vision.spatial_merge_size**2
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embed.patchifier.proj.weight": (embed, vision.num_channels, patch, patch),
        "patch_embed.patchifier.proj.bias": (embed,),
        "patch_embed.patchifier.norm.weight": (embed,),
        "merger.ln_q.weight": (embed,),
        "merger.ln_q.bias": (embed,),
        "merger.mlp.0.weight": (merged, merged),
        "merger.mlp.0.bias": (merged,),
        "merger.mlp.2.weight": (vision.hidden_size, merged),
        "merger.mlp.2.bias": (vision.hidden_size,),
    }
    if vision.post_norm:
        shapes["post_trunk_norm.weight"] = (embed,)
    for i in range(vision.num_hidden_layers):
        block = f"blocks.{i}"
        shapes |= {
            f"{block}.norm1.weight": (embed,),
            f"{block}.norm2.weight": (embed,),
            f"{block}.attn.qkv.weight": (3 * embed, embed),
            f"{block}.attn.proj.weight": (embed, embed),
            f"{block}.mlp.fc1.weight": (inter, embed),
            f"{block}.mlp.fc3.weight": (inter, embed),
            f"{block}.mlp.fc2.weight": (embed, inter),
        }
        if vision.use_bias:
            shapes |= {
                f"{block}.attn.qkv.bias": (3 * embed,),
                f"{block}.attn.proj.bias": (embed,),
                f"{block}.mlp.fc1.bias": (inter,),
                f"{block}.mlp.fc3.bias": (inter,),
                f"{block}.mlp.fc2.bias": (embed,),
            }
    return shapes


def save_random_weights(config: Any, out: Path) -> None:
    text = {key: value for key, value in config.to_dict().items() if key not in ("vision_config", "auto_map")}
    text["architectures"] = ["Qwen2ForCausalLM"]
    text["model_type"] = "qwen2"
    language_model = Qwen2ForCausalLM(Qwen2Config(**text))
    tensors = {name: value.detach().clone().contiguous() for name, value in language_model.state_dict().items()}
    if config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    for name, shape in vision_shapes(config.vision_config).items():
        is_norm = "norm" in name or name.startswith("merger.ln_q")
        if name.endswith(".bias"):
            tensors[f"vision_tower.{name}"] = torch.zeros(shape)
        elif is_norm:
            tensors[f"vision_tower.{name}"] = torch.ones(shape)
        else:
            tensors[f"vision_tower.{name}"] = torch.randn(shape) * 0.02
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
