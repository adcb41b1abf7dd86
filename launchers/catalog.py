"""`python -m launchers catalog`: the catalogue (gateway/models/catalog.py) printed as a table."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.models.catalog import catalog_rows


def _where(row: dict[str, Any], card: int) -> str:
    if not row[f"fits_{card}gb"]:
        return "no"
    used = row[f"settings_{card}gb"]
    return f"yes {used['gpu_memory_utilization']:.2f} {used['max_model_len'] // 1024}kx{used['max_num_seqs']}"


def format_catalog(rows: list[dict[str, Any]]) -> str:
    """The catalogue as a table, then what each model is for and why some cannot be served."""
    head = (
        f"{'model':<16}{'params':>7}{'weights':>9}{'KV/tok':>9}  {'vLLM':<5}{'12 GB alone':<19}{'16 GB alone':<19}tasks"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        supported = "yes" if row["vllm_supported"] else "NO"
        lines.append(
            f"{row['name']:<16}{row['parameters_b']:>6.2f}B{row['weights_gib']:>6.2f}GiB"
            f"{row['kv_kib_per_token']:>5.0f}KiB  {supported:<5}{_where(row, 12):<19}{_where(row, 16):<19}"
            + ",".join(row["tasks"])
        )
    lines.append("(alone: yes <gpu_memory_utilization> <max_model_len>x<max_num_seqs> with the default headroom)")
    lines.append("")
    for row in rows:
        lines.append(f"{row['name']} ({row['hf_repo']}): {row['description']}")
        if row["unsupported_reason"]:
            lines.append(f"    not servable: {row['unsupported_reason']}")
    return "\n".join(lines)


def run_catalog(args: argparse.Namespace) -> int:
    """`python -m launchers catalog`: print the comparison table."""
    print(format_catalog(catalog_rows()))
    return 0
