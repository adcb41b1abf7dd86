"""Pop-up messages for a person. Gradio renders a toast's text as HTML, and gateway messages can quote what a
client sent (or a proxy's HTML error page), so the text is escaped before it is shown."""

from __future__ import annotations

import html

import gradio as gr


def warn(message: str) -> None:
    gr.Warning(html.escape(message))


def inform(message: str) -> None:
    gr.Info(html.escape(message))
