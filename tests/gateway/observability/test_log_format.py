"""JSON log lines (gateway/observability/log_format.py), GATEWAY_LOG_FORMAT and its wiring in `python -m gateway`."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

import gateway.__main__ as gateway_main
from gateway.observability import request_id
from gateway.observability.log_format import JsonFormatter, logging_config
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import Settings


def _record(
    message: str = "hello %s", args: tuple[object, ...] = ("world",), exc: BaseException | None = None
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("gateway.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_line_is_one_json_object_with_the_fields() -> None:
    line = JsonFormatter().format(_record())
    assert "\n" not in line
    data = orjson.loads(line)
    assert data.keys() == {"ts", "level", "logger", "message"}  # no request: no request_id
    assert data["level"] == "WARNING"
    assert data["logger"] == "gateway.test"
    assert data["message"] == "hello world"
    assert data["ts"].endswith("+00:00")
    assert "T" in data["ts"]


def test_the_request_id_of_the_current_request_is_added() -> None:
    token = request_id._current.set("req-0123456789abcdef")
    try:
        data = orjson.loads(JsonFormatter().format(_record()))
    finally:
        request_id._current.reset(token)
    assert data["request_id"] == "req-0123456789abcdef"


def test_a_traceback_goes_in_exc_on_the_same_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError as caught:
        line = JsonFormatter().format(_record("failed", (), exc=caught))
    assert len(line.splitlines()) == 1
    data = orjson.loads(line)
    assert data["message"] == "failed"
    assert data["exc"].startswith("Traceback (most recent call last)")
    assert "ValueError: boom" in data["exc"]


def test_unserialisable_arguments_do_not_break_a_line() -> None:
    data = orjson.loads(JsonFormatter().format(_record("%s", (object(),))))
    assert data["message"].startswith("<object object")


def test_ids_are_accepted_only_when_sane() -> None:
    assert request_id.accept_request_id(b"abc-1.2_3:4") == "abc-1.2_3:4"
    assert request_id.accept_request_id(b"x" * 128) == "x" * 128
    for insane in (b"x" * 129, b"", b"a b", b"caf\xc3\xa9", b"a\nb", None):
        assert request_id.accept_request_id(insane).startswith("req-")
    assert request_id.new_request_id() != request_id.new_request_id()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """dictConfig replaces the root logger's handlers; put back pytest's afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx")
    loggers = {name: logging.getLogger(name) for name in names}
    saved_loggers = {name: (lg.handlers[:], lg.level, lg.propagate) for name, lg in loggers.items()}
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, (handlers, level, propagate) in saved_loggers.items():
            loggers[name].handlers[:] = handlers
            loggers[name].setLevel(level)
            loggers[name].propagate = propagate


@pytest.mark.usefixtures("restore_logging")
def test_uvicorns_loggers_write_json_lines_too(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logging.config.dictConfig(logging_config("json", "info"))
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
    logging.getLogger("gateway.upstream.health_probe").warning("upstream down")
    logging.getLogger("httpx").info("a probe")  # below httpx's WARNING floor
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("uvicorn.error", "Started server process [1]"),
        ("gateway.upstream.health_probe", "upstream down"),
    ]


@pytest.mark.usefixtures("restore_logging")
def test_text_format_is_for_terminals(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logging.config.dictConfig(logging_config("text", "debug"))
    logging.getLogger("gateway.test").debug("plain")
    assert stream.getvalue().rstrip().endswith("DEBUG gateway.test plain")


def test_json_is_the_default_and_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_LOG_FORMAT", raising=False)
    assert Settings().log_format == "json"
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "text")
    assert Settings().log_format == "text"
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


@pytest.mark.usefixtures("restore_logging")
def test_python_m_gateway_hands_the_log_config_to_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class _Server:  # uvicorn.Server, without serving: records the configuration it was given
        started = True

        def __init__(self, config: Any) -> None:
            seen["config"] = config

        def run(self) -> None:
            pass

    app = SimpleNamespace(state=SimpleNamespace(gateway=SimpleNamespace(metrics=GatewayMetrics())))
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "json")
    monkeypatch.setattr(gateway_main, "create_app", lambda settings: app)
    monkeypatch.setattr(gateway_main.uvicorn, "Server", _Server)
    assert gateway_main.main() == 0
    assert seen["config"].log_config == logging_config("json", Settings().log_level)
    assert seen["config"].access_log is False
