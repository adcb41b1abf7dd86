"""Every ```bash block of README.md runs as written against `make demo` (its port swapped for a free one).

Blocks that need what this machine has not (a GPU, vLLM, real upstreams) or that would run this suite again
are skipped by name in SKIPPED, each with its reason, and the test fails if the README gains a block that is
neither run nor listed. The blocks run in a folder holding the files they name (sample pages and PDFs), with
`curl` wrapped to fail on an HTTP error status, so an example that answers an error fails the test.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from gateway.settings import PROJECT_ROOT
from tests.ports import free_port

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "documents"
# The first line of each skipped block, and why it cannot run here.
SKIPPED = {
    "make test   # creates .venv": "runs this very suite (and `make run` needs real vLLM servers)",
    "GATEWAY_MODELS=dots-ocr,qwen3-vl-2b \\": "points at upstreams on other machines",
    "pip install '.[serve]'": "needs a GPU and vLLM",
    "vllm serve rednote-hilab/dots.mocr": "needs a GPU and vLLM",
    "make demo": "this test runs the demo itself",
    "make lint     # ruff check": "runs this very suite",
    "curl -X DELETE": "cancels a running job: the jobs example's job has finished (tests/e2e/test_jobs.py cancels)",
}
# Every README example uses the demo's default port; the test's demo runs on a free one instead.
README_PORT = "127.0.0.1:8000"


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (PROJECT_ROOT / "README.md").read_text(), flags=re.DOTALL)


@pytest.fixture(scope="module")
def demo_port() -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "GATEWAY_PORT": str(port)}  # as a user would pick another port
    demo = subprocess.Popen(
        [sys.executable, "-m", "launchers.demo", "--free-ports", "--tokens-per-s", "0"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = ""
    try:
        deadline = time.monotonic() + 60
        assert demo.stdout is not None
        while "SIMULATED DEMO" not in output:
            assert time.monotonic() < deadline, f"the demo did not become ready: {output}"
            assert demo.poll() is None, f"the demo exited early: {output}"
            if select.select([demo.stdout], [], [], 0.2)[0]:
                output += os.read(demo.stdout.fileno(), 65536).decode()
        assert f"http://127.0.0.1:{port}" in output
        yield port
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.communicate(timeout=20)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the README's examples name, from the bundled samples."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copy(FIXTURES / "dotsocr_demo_image2.png", folder / "page.png")
    shutil.copy(FIXTURES / "dotsocr_demo_image1.jpg", folder / "page.jpg")
    shutil.copy(FIXTURES / "dotsocr_demo_pdf1.pdf", folder / "a.pdf")
    shutil.copy(FIXTURES / "dotsocr_reading_order.png", folder / "b.png")
    Image.open(FIXTURES / "dotsocr_demo_image2.png").convert("RGB").save(folder / "c.tiff")
    shutil.copy(FIXTURES / "olmocr_earnings.pdf", folder / "book.pdf")
    shutil.copy(FIXTURES / "olmocr_earnings.pdf", folder / "invoice.pdf")  # a financial statement stands in
    shutil.copytree(PROJECT_ROOT / "examples", folder / "examples")
    # `pages=1-5` wants five pages: the samples' three-page notes, twice over, would not be one file; the
    # calendar (2 pages) and notes (3) are joined instead.
    _join_pdfs([FIXTURES / "dotsocr_demo_pdf1.pdf", FIXTURES / "olmocr_mattsnotes.pdf"], folder / "report.pdf")
    (folder / "scans").mkdir()
    shutil.copy(FIXTURES / "dotsocr_reading_order.png", folder / "scans" / "reading_order.png")
    (folder / "reports").mkdir()
    shutil.copy(FIXTURES / "olmocr_earnings.pdf", folder / "reports" / "q3.pdf")
    (folder / ".venv").symlink_to(Path(sys.prefix))  # `source .venv/bin/activate`: the venv running this suite
    return folder


def _join_pdfs(parts: list[Path], out: Path) -> None:
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    joined = pdfium.PdfDocument.new()
    for part in parts:
        joined.import_pages(pdfium.PdfDocument(part))
    joined.save(out)


def _first_line(block: str) -> str:
    return block.strip().splitlines()[0]


@pytest.mark.parametrize("block", _bash_blocks(), ids=_first_line)
def test_readme_bash_block_runs(block: str, demo_port: int, workdir: Path) -> None:
    reason = next((why for start, why in SKIPPED.items() if _first_line(block).startswith(start)), None)
    if reason is not None:
        pytest.skip(f"README block `{_first_line(block)}`: {reason}")
    script = 'set -euo pipefail\ncurl() { command curl --fail-with-body -sS "$@"; }\n'
    script += block.replace(README_PORT, f"127.0.0.1:{demo_port}")
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    done = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr}"
    assert "Traceback" not in done.stderr


def test_every_skipped_block_is_still_in_the_readme() -> None:
    firsts = [_first_line(block) for block in _bash_blocks()]
    for start in SKIPPED:
        assert any(first.startswith(start) for first in firsts), f"SKIPPED names a block the README lost: {start}"
