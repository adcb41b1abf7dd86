"""Who may call and what the gateway may fetch: API keys, rate and concurrency limits, remote images with their
address rules, CORS. Imports upstream, models, http, observability, settings and errors; never chat, documents,
jobs or routes.
"""
