"""Chat completions: the cheap checks of a request on the hot path, and relaying vLLM's SSE stream.

Imports upstream, security, models, http, observability, settings and errors; never routes, documents or jobs.
"""
