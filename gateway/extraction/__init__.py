"""Field extraction: a JSON schema filled from a page by a vision model with vLLM's structured outputs."""
