"""Build one tiny random-weight model folder from a spec folder: `python build.py SPEC_DIR OUT_DIR`.

Runs under the vLLM venv's Python (it has torch, transformers and tokenizers), never the test venv's.
A spec folder holds the model's `config.json` (the real architecture with tiny widths and depths, but
the real patch and merge sizes so image-token arithmetic is the real one), `preprocessor_config.json`,
`chat_template.jinja` and `tokens.json` (special tokens in id order, eos and pad); dots.ocr adds its
`configuration_dots.py`. The tokenizer is a byte-level BPE trained here on a little generated text.
Weights are random (seeded): the answers are garbage, everything around them is real.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

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
        "bos_token": None,
        "model_max_length": 131072,
        "extra_special_tokens": special,
        # Model-specific names a processor reads (PaddleOCR-VL's `image_token`), as the hub checkpoints spell them.
        **tokens.get("named_tokens", {}),  # type: ignore[dict-item]
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def build(spec: Path, out: Path) -> None:
    torch.manual_seed(SEED)
    out.mkdir(parents=True)
    for name in ("config.json", "preprocessor_config.json", "chat_template.jinja"):
        shutil.copy(spec / name, out / name)
    for code in spec.glob("*.py"):
        shutil.copy(code, out / code.name)
    tokens = json.loads((spec / "tokens.json").read_text(encoding="utf-8"))
    raw_config = json.loads((spec / "config.json").read_text(encoding="utf-8"))
    vocab_size = raw_config.get("vocab_size") or raw_config["text_config"]["vocab_size"]  # flat or nested config
    train_tokenizer(tokens, vocab_size, out)
    tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    for index, token in enumerate(tokens["special_tokens"]):
        if tokenizer.convert_tokens_to_ids(token) != index:
            raise SystemExit(f"{token} has id {tokenizer.convert_tokens_to_ids(token)}, the spec says {index}")
    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    if raw_config["model_type"] == "dots_ocr":
        import dots_weights  # the hub checkpoint's parameter names: no transformers class exists

        dots_weights.save_random_weights(config, out)
    else:
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
        model.save_pretrained(out)
        # save_pretrained rewrites config.json in transformers' own layout; vLLM reads either.
        import mtp_weights  # a no-op unless the text config has next-n prediction (MTP) layers

        mtp_weights.save_random_mtp_layers(model, out)
    print(f"built {raw_config['architectures'][0]} in {out}", flush=True)


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
