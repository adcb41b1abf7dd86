"""Prometheus metrics and their middleware, JSON log lines, request ids. Imports nothing else of the gateway."""
