"""A full disk under the store: submissions are refused in the OpenAI shape (507), and a job whose last write
cannot be made ends failed with the reason instead of staying `running` for ever.

The disk is real: a 2 MB tmpfs mounted for the test (needs root, as in this project's CI container; skipped
elsewhere), holding the gateway's SQLite store.
"""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import OCR_MODEL
from tests.images import image_bytes
from tests.running_gateway import GatewayServer


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    """Fill the file system to its last byte; the filler file, to delete to free it."""
    filler = disk / "filler"
    error: OSError | None = None
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(bytes(4096))
        except OSError as exc:
            error = exc
    assert error is not None
    assert error.errno == errno.ENOSPC
    return filler


def _submit(gateway: GatewayServer, data: bytes) -> httpx.Response:
    files = [("file", ("page.png", data, "image/png"))]
    return httpx.post(gateway.root_url + "/v1/jobs", files=files, data={"task": "ocr"}, timeout=30)


def test_a_submission_that_does_not_fit_on_the_disk_is_a_507(
    small_disk: Path, make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, store_path=small_disk / "store.sqlite3")
    # 3 MB that claims to be a PNG: stored as the job's input before anything decodes it.
    response = _submit(gateway, b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024))
    assert response.status_code == 507, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_storage", "storage_full")
    assert "disk space" in error["message"]
    # Nothing was half-stored, and a job that fits is still taken.
    assert _submit(gateway, image_bytes(size=(200, 200))).status_code == 202


def test_a_job_whose_result_cannot_be_written_ends_failed_with_the_reason(
    small_disk: Path, make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768, latency_s=1.0)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, store_path=small_disk / "store.sqlite3", cache_max_bytes=0)
    submitted = _submit(gateway, image_bytes(size=(200, 200)))
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert dots.state.wait_for(lambda: dots.state.running == 1, timeout=10)  # the page is at the model
    _fill(small_disk)
    deadline = time.monotonic() + 15
    job: dict[str, Any] = {}
    while (job := httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}", timeout=10).json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, f"the job still says {job['status']} 15 s after its result was lost"
        time.sleep(0.1)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "storage_full"
