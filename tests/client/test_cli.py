"""The `vlm-client` command line against the real HTTP path: the gateway in front of a dots.ocr stand-in."""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import OCR_MODEL
from tests.running_gateway import GatewayServer
from vlm_client.cli import main
from vlm_client.pages import parse_spec, select, spec_of
from vlm_client.progress import Progress

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
CALENDAR = FIXTURES / "dotsocr_demo_pdf1.pdf"  # 2 pages


@pytest.fixture
def dots(make_standin: Callable[..., StandinServer]) -> StandinServer:
    return make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768)


@pytest.fixture
def gateway(make_gateway: Callable[..., GatewayServer], dots: StandinServer) -> GatewayServer:
    return make_gateway({OCR_MODEL: [dots.base_url]})


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """in/a.jpg, in/scans/b.png, in/scans/2024/calendar.pdf (2 pages)."""
    root = tmp_path / "in"
    (root / "scans" / "2024").mkdir(parents=True)
    shutil.copy(FIXTURES / "dotsocr_demo_image1.jpg", root / "a.jpg")
    shutil.copy(FIXTURES / "dotsocr_demo_image2.png", root / "scans" / "b.png")
    shutil.copy(CALENDAR, root / "scans" / "2024" / "calendar.pdf")
    (root / "notes.txt").write_text("not a document: ignored")
    return root


def _chat_requests(standin: StandinServer) -> int:
    return sum(1 for r in standin.state.requests if r.path == "/v1/chat/completions")


def _run(gateway: GatewayServer, task: str, *arguments: str | Path) -> int:
    return main([task, *map(str, arguments), "--gateway", gateway.base_url, "--concurrency", "3", "--timeout", "30"])


def _summary(text: str) -> dict[str, str]:
    rows = (line.rsplit(None, 1) for line in text.strip().splitlines())
    return {name.strip(): value for name, value in rows}


def test_a_directory_is_mirrored_resumed_and_forced(
    gateway: GatewayServer, dots: StandinServer, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    # One page per request: the calendar is sent as two requests and merged into one document.
    assert _run(gateway, "layout", inputs, "--out", out, "--pages-per-request", "1") == 0
    captured = capsys.readouterr()
    summary = _summary(captured.out)
    assert (summary["files done"], summary["files skipped"], summary["files failed"]) == ("3", "0", "0")
    assert (summary["pages"], summary["pages failed"]) == ("4", "0")
    assert "4/4 pages" in captured.err  # the last progress line (stderr is not a TTY here)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert written == [
        "a.csv", "a.json", "a.md", "scans", "scans/2024", "scans/2024/calendar.csv", "scans/2024/calendar.json",
        "scans/2024/calendar.md", "scans/b.csv", "scans/b.json", "scans/b.md",
    ]  # fmt: skip
    calendar = json.loads((out / "scans/2024/calendar.json").read_text())
    assert calendar["object"] == "document.layout"
    assert calendar["status"] == "ok"
    assert [p["page"] for p in calendar["pages"]] == [1, 2]
    assert all(p["elements"] for p in calendar["pages"])
    assert calendar["markdown"].count("# A Simulated Page") == 2
    assert calendar["usage"]["completion_tokens"] == sum(p["usage"]["completion_tokens"] for p in calendar["pages"])
    assert (out / "scans/2024/calendar.md").read_text() == calendar["markdown"] + "\n"
    rows = list(csv.reader(io.StringIO((out / "scans/2024/calendar.csv").read_text())))
    assert rows[0] == ["page", "index", "category", "x1", "y1", "x2", "y2", "text"]
    assert {row[0] for row in rows[1:]} == {"1", "2"}
    assert json.loads((out / "a.json").read_text())["pages"][0]["page"] == 1
    assert _chat_requests(dots) == 4

    # Again: every output exists, so nothing is sent.
    assert _run(gateway, "layout", inputs, "--out", out) == 0
    summary = _summary(capsys.readouterr().out)
    assert (summary["files done"], summary["files skipped"], summary["pages"]) == ("0", "3", "0")
    assert _chat_requests(dots) == 4

    # --force reads everything again (the calendar now in one request of 2 pages) and replaces every output
    # (a new file renamed over the old one). The gateway may answer from its result cache: the stand-in is not
    # what is counted here.
    before = {path: path.stat().st_ino for path in out.rglob("*.*")}
    assert _run(gateway, "layout", inputs, "--out", out, "--force") == 0
    summary = _summary(capsys.readouterr().out)
    assert (summary["files done"], summary["files skipped"], summary["pages"]) == ("3", "0", "4")
    assert all(path.stat().st_ino != inode for path, inode in before.items())


def test_a_broken_file_fails_alone(
    gateway: GatewayServer, inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (inputs / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a PDF")
    out = tmp_path / "out"
    assert _run(gateway, "ocr", inputs, "--out", out) == 1
    captured = capsys.readouterr()
    summary = _summary(captured.out)
    assert (summary["files done"], summary["files failed"]) == ("3", "1")
    [error] = [line for line in captured.err.splitlines() if "broken.pdf" in line]
    assert error.startswith(str(inputs / "broken.pdf") + ": HTTP 400: ")
    assert not list(out.glob("broken*"))
    assert (out / "scans/2024/calendar.md").read_text().count("A Simulated Page") == 2
    assert (out / "a.json").exists()
    assert not list(out.rglob("*.csv"))  # ocr writes md and json by default
    assert not list(out.rglob(".*.tmp"))


def test_a_failed_page_is_written_failed_and_redone_next_time(
    gateway: GatewayServer, dots: StandinServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dots.state.faults.fail_next = 1
    dots.state.faults.fail_status = 400  # not retried by the gateway: the page fails
    out = tmp_path / "out"
    assert _run(gateway, "layout", CALENDAR, "--out", out) == 1
    captured = capsys.readouterr()
    assert _summary(captured.out)["pages failed"] == "1"
    assert "dotsocr_demo_pdf1.pdf: page " in captured.err
    document = json.loads((out / "dotsocr_demo_pdf1.json").read_text())
    assert document["status"] == "failed"
    assert [p["page"] for p in document["pages"]] == [1, 2]
    assert sorted(p["status"] for p in document["pages"]) == ["failed", "ok"]
    # The document records a failure, so the next run reads the file again instead of skipping it.
    assert _run(gateway, "layout", CALENDAR, "--out", out) == 0
    assert _summary(capsys.readouterr().out)["files done"] == "1"
    assert json.loads((out / "dotsocr_demo_pdf1.json").read_text())["status"] == "ok"


def test_page_selection_is_clipped_and_sent_in_ranges(
    gateway: GatewayServer, dots: StandinServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _run(gateway, "ocr", CALENDAR, "--out", out, "--pages", "2-9", "--format", "json") == 0
    document = json.loads((out / "dotsocr_demo_pdf1.json").read_text())
    assert [p["page"] for p in document["pages"]] == [2]
    assert _chat_requests(dots) == 1
    assert not (out / "dotsocr_demo_pdf1.md").exists()
    capsys.readouterr()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["ocr", "{image}", "--gateway", "http://127.0.0.1:{closed}"], "cannot reach the gateway"),
        (["ocr", "{image}", "--format", "csv"], "--format csv"),
        (["ocr", "{empty}"], "no inputs"),
        (["ocr", "{missing}"], "no such file or directory"),
        (["ocr", "{image}", "--gateway", "ftp://example.com"], "not an http(s) URL"),
        (["ocr", "{image}", "--pages", "3-1"], "reversed range"),
        (["ocr", "{image}", "--concurrency", "0"], "--concurrency"),
        (["ocr", "{image}", "--model", "no-such-model"], "does not serve"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    gateway: GatewayServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    message: str,
) -> None:
    (tmp_path / "empty").mkdir()
    image = tmp_path / "page.png"
    shutil.copy(FIXTURES / "dotsocr_demo_image2.png", image)
    values: dict[str, Any] = {
        "image": image,
        "empty": tmp_path / "empty",
        "missing": tmp_path / "missing",
        "closed": _closed_port(),
    }
    argv = [part.format(**values) for part in arguments]
    if "--gateway" not in argv:
        argv += ["--gateway", gateway.root_url]
    assert main([*argv, "--out", str(tmp_path / "out"), "--timeout", "5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("vlm-client: error: ")
    assert message in line
    assert not (tmp_path / "out").exists()


def test_the_console_script(gateway: GatewayServer, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("vlm-client")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            *(str(script), "layout", str(FIXTURES / "dotsocr_demo_image2.png"), "--gateway", gateway.root_url),
            *("--out", str(out), "--format", "csv", "--mode", "detect"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1/1 pages  1/1 files" in result.stderr
    assert _summary(result.stdout)["files done"] == "1"
    rows = list(csv.reader(io.StringIO((out / "dotsocr_demo_image2.csv").read_text())))
    assert len(rows) > 1
    assert all(row[7] == "" for row in rows[1:])  # detect: boxes and categories only


def test_page_specs() -> None:
    ranges = parse_spec(" 1-3, 7 ,10-")
    assert ranges == [(1, 3), (7, 7), (10, None)]
    assert select(ranges, 12) == [1, 2, 3, 7, 10, 11, 12]
    assert select(ranges, 2) == [1, 2]
    assert select(None, 3) == [1, 2, 3]
    assert spec_of([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    for bad in ("", "0", "a", "3-1", "1--2"):
        with pytest.raises(ValueError, match="--pages"):
            parse_spec(bad)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_redraws_on_a_terminal() -> None:
    now = [0.0]
    stream = _Terminal()
    progress = Progress(120, 10, stream, clock=lambda: now[0])
    now[0] = 10.0
    progress.advance(24, files=3)
    assert progress.line() == "[####----------------] 24/120 pages  3/10 files  2.4 pages/s  ETA 40s"
    progress.message("x.pdf: HTTP 400: bad")
    progress.close()
    assert stream.getvalue().count("\r") >= 2
    assert "\nx.pdf: HTTP 400: bad\n" in stream.getvalue().replace("\r\x1b[2K", "\n")
