"""ASGI plumbing shared by every route: request bodies, disconnects, SSE framing, media types, error
rendering and the request deadline. Imports observability, settings and errors only.
"""
