"""Mistral's OCR API on /v1/ocr and /v1/jobs: its request (`document`), its answer (`pages[]`, annotations)."""
