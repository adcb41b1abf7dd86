"""Log lines: one JSON object per line (GATEWAY_LOG_FORMAT=json, the default, for log collectors) or text.

A JSON line has `ts` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, `request_id` when the
line was logged while serving a request (observability/request_id.py), and `exc` with the traceback when there is
one. Nothing else from the record is copied: the gateway never logs API keys or request bodies, and this
formatter adds no field through which they could leak.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from gateway.observability.request_id import current_request_id

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks included, newlines escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Formatting runs in the thread (and context) that logged, so the context variable is the request's.
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict for the gateway and uvicorn's own loggers (`uvicorn.run(log_config=)`).

    One handler on the root logger, to stderr; uvicorn's loggers propagate to it instead of having their own.
    """
    formatter: dict[str, Any] = {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gateway": formatter},
        "handlers": {
            "gateway": {"class": "logging.StreamHandler", "formatter": "gateway", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["gateway"], "level": level},
        "loggers": {
            # uvicorn's default config gives these handlers of their own and stops propagation: undo both.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": level},
            "httpx": {"level": "WARNING"},  # one line per health probe is noise
        },
    }
