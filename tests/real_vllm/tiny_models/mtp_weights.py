"""Random weights for the multi-token-prediction (MTP) layers a hub checkpoint carries after its decoder layers.

GLM-OCR's config asks for `num_nextn_predict_layers: 1` and its checkpoint holds that layer at index
`num_hidden_layers` (`model.language_model.layers.16.*` in the 0.9B model): a decoder block, `enorm`, `hnorm`,
`eh_proj`, `shared_head.norm`, and copies of the embeddings and the LM head. transformers' model class has no
such module (it never drafts), so `save_pretrained` leaves them out; vLLM's MTP draft model (`GlmOcrMTPModel`,
started by `--speculative-config '{"method": "mtp", ...}'`) loads them. They go into a second shard, which vLLM
reads beside `model.safetensors`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn


def save_random_mtp_layers(model: nn.Module, out: Path) -> None:
    """Write `model-mtp.safetensors` when the model's text config has MTP layers; otherwise do nothing."""
    text = model.config.get_text_config()
    count = getattr(text, "num_nextn_predict_layers", 0) or 0
    if count == 0:
        return
    weights = model.state_dict()
    embed = weights["model.language_model.embed_tokens.weight"]
    head = weights["lm_head.weight"]
    decoder_layer = type(model.model.language_model.layers[0])
    hidden, std = text.hidden_size, text.initializer_range
    tensors: dict[str, torch.Tensor] = {}
    for index in range(text.num_hidden_layers, text.num_hidden_layers + count):
        prefix = f"model.language_model.layers.{index}."
        block = decoder_layer(text, layer_idx=index)
        for name, tensor in block.state_dict().items():
            tensors[prefix + name] = tensor.float().contiguous()
        tensors[prefix + "enorm.weight"] = torch.ones(hidden)
        tensors[prefix + "hnorm.weight"] = torch.ones(hidden)
        tensors[prefix + "eh_proj.weight"] = torch.randn(hidden, 2 * hidden) * std
        tensors[prefix + "shared_head.norm.weight"] = torch.ones(hidden)
        tensors[prefix + "shared_head.head.weight"] = head.clone()
        tensors[prefix + "embed_tokens.weight"] = embed.clone()
    save_file(tensors, str(out / "model-mtp.safetensors"), metadata={"format": "pt"})
