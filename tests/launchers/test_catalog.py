"""The model catalogue: every config, the unservable ones with their reasons, and the CLI table."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.models.catalog import catalog_rows
from gateway.settings import PROJECT_ROOT

ALL = {"dots-ocr", "got-ocr2", "moondream2", "phi-3.5-vision", "qwen2-vl-2b", "qwen3-vl-2b"}


def test_six_rows_json_ready() -> None:
    rows = catalog_rows()
    assert {row["name"] for row in rows} == ALL
    json.dumps(rows)
    for row in rows:
        assert {"hf_repo", "parameters_b", "weights_gib", "kv_kib_per_token", "tasks", "description"} <= set(row)
        assert isinstance(row["fits_12gb"], bool)
        assert isinstance(row["fits_16gb"], bool)


def test_unservable_models_are_marked_with_reasons() -> None:
    rows = {row["name"]: row for row in catalog_rows()}
    for name in ("got-ocr2", "moondream2"):
        assert rows[name]["vllm_supported"] is False
        assert "vLLM" in rows[name]["unsupported_reason"]
        assert rows[name]["fits_12gb"] is False
        assert rows[name]["fits_16gb"] is False
    for name in ALL - {"got-ocr2", "moondream2"}:
        assert rows[name]["vllm_supported"] is True
        assert rows[name]["unsupported_reason"] is None


def test_phi_fits_alone_with_a_short_context() -> None:
    phi = next(row for row in catalog_rows() if row["name"] == "phi-3.5-vision")
    assert phi["kv_kib_per_token"] == 384
    assert phi["fits_12gb"] is True
    assert phi["fits_16gb"] is True
    assert phi["settings_12gb"]["max_model_len"] <= 4096
    assert phi["settings_12gb"]["max_num_seqs"] < 4  # the config's 4 does not fit 12 GB; the planner's fix does


def test_cli_catalog_prints_every_model() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "launchers", "catalog"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for name in ALL:
        assert name in done.stdout
    assert "not servable: vLLM has no implementation of GotOcr2ForConditionalGeneration" in done.stdout
