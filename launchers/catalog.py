"""`python -m launchers catalog`: the catalogue (gateway/models/catalog.py) printed as a table."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.models.catalog import catalog_rows


def _where(row: dict[str, Any], card: int) -> str:
    if not row[f"fits_{card}gb"]:
        return "no"
    used = row[f"settings_{card}gb"]
    lossy = "*" if used["fix"] and used["fix"].endswith("[lossy]") else ""
    return f"yes{lossy} {used['gpu_memory_utilization']:.2f} {used['max_model_len'] // 1024}kx{used['max_num_seqs']}"


def format_catalog(rows: list[dict[str, Any]]) -> str:
    """The catalogue as a table, then what each model is for and why some cannot be served."""
    head = (
        f"{'model':<17}{'params':>7}{'weights':>9}{'KV/tok':>9}  {'engine':<13}"
        f"{'12 GB alone':<19}{'16 GB alone':<19}{'tasks':<58}licence"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        tasks = ",".join(row["tasks"]) + (f" (layout: {','.join(row['layout_modes'])})" if row["layout_modes"] else "")
        lines.append(
            f"{row['name']:<17}{row['parameters_b']:>6.2f}B{row['weights_gib']:>6.2f}GiB"
            f"{row['kv_kib_per_token']:>5.0f}KiB  {row['engine'] or 'NONE':<13}"
            f"{_where(row, 12):<19}{_where(row, 16):<19}{tasks:<58}{row['licence']}"
        )
    lines.append("(alone: yes <gpu_memory_utilization> <max_model_len>x<max_num_seqs> with the default headroom;")
    lines.append(" * = only with a lossy fix such as fp8, see `python -m launchers plan --models NAME`)")
    lines.append("")
    for row in rows:
        lines.append(f"{row['name']} ({row['hf_repo']}): {row['description']}")
        if row["licence_note"]:
            lines.append(f"    licence: {row['licence_note']}")
        if row["unsupported_reason"]:
            lines.append(f"    not servable: {row['unsupported_reason']} Use {row['alternative']}.")
    return "\n".join(lines)


def run_catalog(args: argparse.Namespace) -> int:
    """`python -m launchers catalog`: print the comparison table."""
    print(format_catalog(catalog_rows()))
    return 0
