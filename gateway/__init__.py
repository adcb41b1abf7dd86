"""An OpenAI-compatible gateway in front of per-model vLLM servers for OCR, document layout and image chat."""

__version__ = "0.1.0"
