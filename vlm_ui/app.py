"""The Gradio app: four tabs over one GatewayClient, and what the page loads on open.

Everything the tabs know about the gateway comes from its public API at request time (the model list on page
load, then each call), so one UI process can be pointed at any gateway, and a gateway restart needs no UI one.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from vlm_ui.gateway_client import GatewayClient, GatewayError
from vlm_ui.tabs import chat, document, jobs, models

# Long Markdown and wide tables: let the page use the width it has.
CSS = """
#document-markdown { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px; }
footer { display: none !important; }
"""


def build_app(client: GatewayClient, *, job_pages: int = 8) -> gr.Blocks:
    """The UI for the gateway `client` talks to; documents of more than `job_pages` pages go through /v1/jobs."""
    app: gr.Blocks
    with gr.Blocks(title="VLM gateway") as app:
        gr.Markdown(f"## VLM gateway — web UI\nTalking to `{client.base_url}` through its public API.")
        banner = gr.Markdown(elem_id="gateway-banner")
        served_models = gr.State([])  # the served model cards from /v1/models, for the model pickers
        session_jobs = gr.State([])  # the jobs this browser session submitted (the Jobs tab lists them)
        with gr.Tabs():
            with gr.Tab("Document", id="document"):
                task, document_model = document.build(
                    client, served_models=served_models, session_jobs=session_jobs, job_pages=job_pages
                )
            with gr.Tab("Chat", id="chat"):
                chat_model = chat.build(client)
            with gr.Tab("Models", id="models"):
                models_table, _ = models.build(client)
            with gr.Tab("Jobs", id="jobs"):
                jobs.build(client, session_jobs)

        def on_load(task_label: str) -> tuple[Any, ...]:
            """Fill the pickers from the gateway; a gateway that is down leaves them empty and says so."""
            try:
                listing = client.models(verbose=True)
            except GatewayError as exc:
                message = f"⚠️ {exc.readable()} Start the gateway, then reload this page."
                return [], gr.update(choices=[]), gr.update(choices=[]), [], message
            served = [card for card in listing["data"] if isinstance(card, dict)]
            for_task = document.models_for(task_label, served)
            # A general chat model first: dots-ocr also chats, but it is a document specialist.
            chatty = sorted(
                (m for m in served if "chat" in (m.get("tasks") or [])),
                key=lambda m: "layout" in (m.get("tasks") or []),
            )
            chat_ids = [str(m["id"]) for m in chatty]
            unavailable = [str(m["id"]) for m in served if m.get("status") != "ready"]
            note = f"⚠️ Not ready: {', '.join(unavailable)} (see the Models tab)." if unavailable else ""
            return (
                served,
                gr.update(choices=for_task, value=for_task[0] if for_task else None),
                gr.update(choices=chat_ids, value=chat_ids[0] if chat_ids else None),
                models.model_rows(listing),
                note,
            )

        app.load(
            on_load,
            task,
            [served_models, document_model, chat_model, models_table, banner],
            api_visibility="private",
        )
    return app


def launch_options() -> dict[str, Any]:
    """What `launch()` needs besides host and port (theme and CSS moved there in Gradio 6)."""
    return {"css": CSS, "footer_links": [], "show_error": True, "quiet": True}
