"""Build one tiny random-weight model folder from a spec folder: `python build.py SPEC_DIR OUT_DIR`.

Runs under the vLLM venv's Python (it has torch, transformers and tokenizers), never the test venv's.
A spec folder holds the model's `config.json` (the real architecture with tiny widths and depths, but
the real patch and merge sizes so image-token arithmetic is the real one), `tokens.json` (special tokens in
id order, eos, pad and bos), and whatever else the checkpoint ships and vLLM reads: `preprocessor_config.json`,
`processor_config.json` (LightOnOCR), `chat_template.jinja` (not DeepSeek-OCR-2, whose hub repo has none),
`configuration_dots.py` (dots.ocr); Moondream3's spec is `config.json` and `tokens.json` alone (vLLM's own
Moondream3Processor does the image work; its tokenizer is moondream/starmie-v1's on the hub). Every file but
`tokens.json` is copied as it is. The tokenizer is a byte-level BPE trained here on a little generated text.
Weights are random (seeded): the answers are garbage, everything around them is real.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoTokenizer,
    LightOnOcrConfig,
    LightOnOcrForConditionalGeneration,
)

SEED = 0
_TEXT = (
    "the page table figure title text header footer formula caption list item section picture document "
    "read this image and answer in json markdown with boxes category bbox layout ocr hello world count "
    "one two three four five six seven eight nine ten quick brown fox jumps over lazy dog say what is"
)


def train_tokenizer(tokens: dict[str, object], vocab_size: int, out: Path) -> None:
    """A byte-level BPE whose first ids are the spec's special tokens, saved with the chat template."""
    special = [str(token) for token in tokens["special_tokens"]]  # type: ignore[attr-defined]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = _TEXT.split()
    corpus = [" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(400)]
    corpus += ['{"bbox": [12, 34, 560, 78], "category": "Text", "text": "Hello, world!"}'] * 20
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": tokens.get("tokenizer_class", "Qwen2Tokenizer"),
        "eos_token": tokens["eos_token"],
        "pad_token": tokens["pad_token"],
        "unk_token": None,
        "bos_token": tokens.get("bos_token"),
        "model_max_length": 131072,
        "extra_special_tokens": special,
        # Model-specific names a processor reads (PaddleOCR-VL's `image_token`), as the hub checkpoints spell them.
        **tokens.get("named_tokens", {}),  # type: ignore[dict-item]
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def language_config(raw_config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config.json: the top level (Qwen2-VL, dots.ocr), `text_config`
    (LightOnOCR's mistral3), `language_config` (DeepSeek-OCR-2's deepseek_vl_v2) or `config.text` (Moondream3,
    whose config.json wraps the model's own config dict)."""
    for key in ("text_config", "language_config"):
        if key in raw_config:
            nested: dict[str, Any] = raw_config[key]
            return nested
    if "config" in raw_config:
        wrapped: dict[str, Any] = raw_config["config"]["text"]
        return wrapped
    return raw_config


def build(spec: Path, out: Path) -> None:
    torch.manual_seed(SEED)
    out.mkdir(parents=True)
    for path in spec.iterdir():
        if path.is_file() and path.name != "tokens.json" and path.suffix != ".pyc":
            shutil.copy(path, out / path.name)
    tokens = json.loads((spec / "tokens.json").read_text(encoding="utf-8"))
    raw_config = json.loads((spec / "config.json").read_text(encoding="utf-8"))
    train_tokenizer(tokens, language_config(raw_config)["vocab_size"], out)
    tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    for index, token in enumerate(tokens["special_tokens"]):
        if tokenizer.convert_tokens_to_ids(token) != index:
            raise SystemExit(f"{token} has id {tokenizer.convert_tokens_to_ids(token)}, the spec says {index}")
    architecture = raw_config["architectures"][0]
    if architecture == "DotsOCRForCausalLM":
        import dots_weights  # the hub checkpoint's parameter names: no transformers class exists

        dots_weights.save_random_weights(AutoConfig.from_pretrained(out, trust_remote_code=True), out)
    elif architecture == "LightOnOCRForConditionalGeneration":
        save_lightonocr_weights(raw_config, out)
    elif architecture in ("DeepseekOCR2ForCausalLM", "Moondream3ForCausalLM"):
        # No weights: vLLM's dummy loader fills them (see DUMMY_WEIGHT_SUBSTITUTIONS in vllm_server.py).
        # DeepSeek-OCR-2's encoders have real sizes in vLLM's code; Moondream3 has no transformers class.
        pass
    else:
        config = AutoConfig.from_pretrained(out, trust_remote_code=True)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
        model.save_pretrained(out)
        # save_pretrained rewrites config.json in transformers' own layout; vLLM reads either.
        import mtp_weights  # a no-op unless the text config has next-n prediction (MTP) layers

        mtp_weights.save_random_mtp_layers(model, out)
    print(f"built {architecture} in {out}", flush=True)


def save_lightonocr_weights(raw_config: dict[str, Any], out: Path) -> None:
    """LightOnOCR's checkpoint names (`model.vision_encoder.*`, `model.vision_projection.*`,
    `model.language_model.*`, `lm_head.*`, what vLLM's LightOnOCR weight mapper expects) are those of
    transformers' own LightOnOcr classes; its config.json stays the hub's `mistral3` one, which vLLM needs."""
    config = LightOnOcrConfig(
        text_config=raw_config["text_config"],
        vision_config=raw_config["vision_config"],
        image_token_id=raw_config["image_token_index"],
        spatial_merge_size=raw_config["spatial_merge_size"],
        tie_word_embeddings=raw_config["tie_word_embeddings"],
    )
    model = LightOnOcrForConditionalGeneration(config).to(torch.float32)
    tensors = {name: value.detach().clone().contiguous() for name, value in model.state_dict().items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})


def main(argv: list[str]) -> int:
    spec, out = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    build(spec, partial)
    partial.rename(out)  # all or nothing: a folder under the final name is complete
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
