"""The vLLM servers behind each model: the pooled client, replicas and their choice, circuit breaker, load
scraping, health probes and reading their errors. Imports models, http, observability, settings and errors.
"""
