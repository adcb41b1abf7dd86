"""Models tab: the catalogue from GET /v1/models?verbose=true with each served model's live status.

`data` holds what this gateway serves (status from its last upstream health probe, `max_model_len` once the
upstream reported it); `catalog` every configured model, served or not, with its size and whether it fits alone
on a 12 or 16 GB card. Both are joined by name so one table answers "what can I use, and what could I run".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from vlm_ui.gateway_client import GatewayClient, GatewayError
from vlm_ui.notify import warn

MODEL_COLUMNS = [
    "model",
    "status",
    "tasks",
    "params (B)",
    "weights (GiB)",
    "fits 12 GB",
    "fits 16 GB",
    "context",
    "engine",
    "licence",
    "what it is for",
]
_REFRESH_S = 10.0  # live status without hammering: the gateway itself probes every 5 s by default


def model_rows(listing: Mapping[str, Any]) -> list[list[Any]]:
    """Served models first (in the gateway's order), then configured ones it does not serve."""
    served = {str(card["id"]): card for card in listing.get("data") or [] if isinstance(card, Mapping)}
    catalog = {str(row.get("name")): row for row in listing.get("catalog") or [] if isinstance(row, Mapping)}
    rows = []
    for name in [*served, *(n for n in catalog if n not in served)]:
        card, row = served.get(name, {}), catalog.get(name, {})
        if card:
            status = str(card.get("status", "?"))
        elif row and row.get("engine") is None:  # no engine can serve it (the reason is in the last column)
            status = "not servable"
        else:
            status = "not served here"
        tasks = card.get("tasks") or row.get("tasks") or []
        context = card.get("max_model_len")
        rows.append(
            [
                name,
                status,
                ", ".join(str(t) for t in tasks),
                row.get("parameters_b", ""),
                row.get("weights_gib", ""),
                _fit(row, 12),
                _fit(row, 16),
                f"{context:,}" if isinstance(context, int) else _planned_context(row),
                "" if not row else (row.get("engine") or "none"),
                row.get("licence") or row.get("license") or card.get("licence") or "",
                row.get("unsupported_reason") or row.get("description") or "",
            ]
        )
    return rows


def _fit(row: Mapping[str, Any], card_gb: int) -> str:
    if f"fits_{card_gb}gb" not in row:
        return ""
    if not row[f"fits_{card_gb}gb"]:
        return "no"
    settings = row.get(f"settings_{card_gb}gb") or {}
    length, seqs = settings.get("max_model_len"), settings.get("max_num_seqs")
    return f"yes ({length:,} tokens x {seqs})" if length and seqs else "yes"


def _planned_context(row: Mapping[str, Any]) -> str:
    """Not reported by a live upstream: the context the planner would give it alone on 16 GB, marked as such."""
    settings = row.get("settings_16gb") or {}
    length = settings.get("max_model_len")
    return f"({length:,} planned)" if length else ""


def build(client: GatewayClient) -> tuple[gr.Dataframe, gr.Button]:
    with gr.Row():
        refresh = gr.Button("Refresh", elem_id="models-refresh", scale=0)
        gr.Markdown(
            "Live from the gateway's `GET /v1/models?verbose=true`; refreshed every "
            f"{_REFRESH_S:g} s. *status* comes from the gateway's health probes of each vLLM server."
        )
    problem = gr.Markdown(elem_id="models-problem")
    table = gr.Dataframe(headers=MODEL_COLUMNS, interactive=False, wrap=True, elem_id="models-table")

    def load() -> tuple[Any, str]:
        try:
            return model_rows(client.models(verbose=True)), ""
        except GatewayError as exc:
            warn(exc.readable())
            return gr.update(), f"⚠️ {exc.readable()} (the table shows the last list that arrived)"

    def tick() -> tuple[Any, str]:
        # A timer must not raise a toast every few seconds while the gateway is down: keep the last table.
        try:
            return model_rows(client.models(verbose=True)), ""
        except GatewayError as exc:
            return gr.update(), f"⚠️ {exc.readable()} (the table shows the last list that arrived)"

    refresh.click(load, None, [table, problem], api_name="models")
    gr.Timer(_REFRESH_S).tick(tick, None, [table, problem], api_visibility="private", show_progress="hidden")
    return table, refresh
