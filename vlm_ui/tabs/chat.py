"""Chat tab: multimodal chat through /v1/chat/completions, streamed token by token.

The conversation lives in a gr.State as plain turns (role, text, image paths); both what the Chatbot shows and
the OpenAI `messages` sent are built from it, so the model always gets exactly the history the person sees.
Images go inline as data: URLs, the one form every gateway accepts (remote URLs need an allow-list).
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from vlm_ui.gateway_client import GatewayClient, GatewayError
from vlm_ui.notify import warn

Turn = dict[str, Any]  # {"role": "user" | "assistant", "text": str, "images": [path, …]}


def openai_messages(turns: list[Turn], system: str = "") -> list[dict[str, Any]]:
    """The conversation in OpenAI's shape: a user turn with images is a list of parts, images first
    (the order the VLMs' own examples use)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system.strip() else []
    for turn in turns:
        images = turn.get("images") or []
        if turn["role"] == "user" and images:
            parts: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": data_url(Path(p))}} for p in images
            ]
            if turn.get("text"):
                parts.append({"type": "text", "text": turn["text"]})
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": turn["role"], "content": turn.get("text", "")})
    return messages


def data_url(path: Path) -> str:
    media_type = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


def display(turns: list[Turn]) -> list[dict[str, Any]]:
    """The Chatbot's messages: each image its own message (Gradio groups consecutive ones), then the text."""
    shown: list[dict[str, Any]] = []
    for turn in turns:
        for image in turn.get("images") or []:
            shown.append({"role": turn["role"], "content": {"path": image}})
        if turn.get("text") or not turn.get("images"):
            shown.append({"role": turn["role"], "content": turn.get("text", "")})
    return shown


def build(client: GatewayClient) -> gr.Dropdown:
    """The tab's components and events; returns the model picker so the app can fill it on load."""
    turns_state = gr.State([])
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Conversation", height=520, elem_id="chatbot", feedback_options=None)
            entry = gr.MultimodalTextbox(
                placeholder="Ask about an image, or just type…",
                file_types=["image"],
                file_count="multiple",
                show_label=False,
                elem_id="chat-input",
            )
            with gr.Row():
                stop = gr.Button("Stop", elem_id="chat-stop")
                clear = gr.Button("Clear conversation", elem_id="chat-clear")
        with gr.Column(scale=1, min_width=260):
            # allow_custom_value: a gateway may serve models its list does not show (or the list failed).
            model = gr.Dropdown(choices=[], label="Model", allow_custom_value=True, elem_id="chat-model")
            temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature")
            max_tokens = gr.Number(value=512, minimum=1, maximum=32768, precision=0, label="Max tokens")
            system = gr.Textbox(label="System prompt (optional)", lines=3)
            usage = gr.Markdown(elem_id="chat-usage")

    def send(
        message: dict[str, Any] | None,
        turns: list[Turn] | None,
        model_name: str | None,
        temp: float,
        limit: float | None,
        system_prompt: str,
    ) -> Iterator[tuple[Any, ...]]:
        message = message or {}
        text = str(message.get("text") or "").strip()
        images = [str(f if isinstance(f, str) else f.get("path")) for f in message.get("files") or []]
        problem = None
        if not text and not images:
            problem = "Type a message or attach an image."
        elif not model_name:
            problem = "Pick a model first (the list comes from the gateway's /v1/models)."
        if problem:
            warn(problem)
            yield gr.update(), gr.update(), gr.update(), f"⚠️ {problem}"
            return
        history = [*(turns or []), {"role": "user", "text": text, "images": images}]
        body: dict[str, Any] = {
            "model": model_name,
            "messages": openai_messages(history, system_prompt),
            "temperature": float(temp),
        }
        if limit:
            body["max_tokens"] = int(limit)
        answer: Turn = {"role": "assistant", "text": "", "images": []}
        shown = [*history, answer]
        yield display(shown), None, history, ""
        finish: str | None = None
        usage_text = ""
        try:
            for delta in client.chat_stream(body):
                finish = delta.finish_reason or finish
                if delta.text:
                    answer["text"] += delta.text
                    yield display(shown), None, history, ""
                if delta.usage:
                    usage_text = _usage_line(delta.usage, finish)
                    yield display(shown), None, history, usage_text
        except GatewayError as exc:
            # The failed turn stays visible with the reason, but leaves the history the model will see.
            answer["text"] = (answer["text"] + "\n\n" if answer["text"] else "") + f"⚠️ {exc.readable()}"
            # The message goes back into the box, so trying again (another model, the gateway back) is one key.
            warn(exc.readable())
            yield display(shown), {"text": text, "files": images}, turns or [], f"⚠️ {exc.readable()}"
            return
        yield display(shown), None, [*history, answer], usage_text

    event = entry.submit(
        send,
        [entry, turns_state, model, temperature, max_tokens, system],
        [chatbot, entry, turns_state, usage],
        api_name="chat",
    )
    stop.click(None, cancels=[event], api_visibility="private")
    clear.click(lambda: ([], [], ""), None, [chatbot, turns_state, usage], api_visibility="private")
    return model


def _usage_line(usage: dict[str, Any], finish_reason: str | None) -> str:
    line = f"tokens: {usage.get('prompt_tokens', 0):,} in, {usage.get('completion_tokens', 0):,} out"
    return line + (f" · finish: {finish_reason}" if finish_reason else "")
