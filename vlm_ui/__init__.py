"""A web UI (Gradio) for the VLM gateway; a client of its public HTTP API only. Start it with `vlm-ui`."""
