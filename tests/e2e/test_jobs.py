"""Durable jobs (/v1/jobs) and the document result cache, over real HTTP with the stand-in as dots.ocr."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.jobs.runner import INPUT_LOST
from gateway.jobs.store_schema import open_store
from gateway.settings import PROJECT_ROOT
from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import OCR_MODEL
from tests.images import image_bytes
from tests.ports import free_port
from tests.running_gateway import GatewayServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
CALENDAR = FIXTURES / "dotsocr_demo_pdf1.pdf"  # 2 pages


def _dots(make_standin: Callable[..., StandinServer], latency_s: float = 0.2) -> StandinServer:
    return make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768, latency_s=latency_s)


def _submit(root_url: str, task: str = "layout", data: bytes | None = None, **fields: str) -> httpx.Response:
    files = [("file", ("calendar.pdf", CALENDAR.read_bytes() if data is None else data, "application/pdf"))]
    return httpx.post(root_url + "/v1/jobs", files=files, data={"task": task, **fields}, timeout=30)


def _wait_status(root_url: str, job_id: str, statuses: tuple[str, ...], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(f"{root_url}/v1/jobs/{job_id}", timeout=10).json()
        if job.get("status") in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached {statuses}: {job}")
        time.sleep(0.05)


def _chat_requests(standin: StandinServer) -> list[Any]:
    return [r for r in standin.state.requests if r.path == "/v1/chat/completions"]


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    document = {k: v for k, v in document.items() if k not in ("id", "timings", "cached")}
    return document


def test_a_job_runs_to_the_same_result_as_the_layout_route(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = _dots(make_standin)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, cache_max_bytes=0)
    response = _submit(gateway.root_url)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["id"].startswith("job-")
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["object"], job["status"], job["task"], job["model"]) == ("job", "queued", "layout", OCR_MODEL)
    assert isinstance(job["created_at"], int)

    done = _wait_status(gateway.root_url, job["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"pages_done": 2, "pages_total": 2}
    assert "error" not in done
    result = httpx.get(f"{gateway.root_url}/v1/jobs/{job['id']}/result", timeout=10)
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"

    direct = httpx.post(
        gateway.root_url + "/v1/layout", files=[("file", ("calendar.pdf", CALENDAR.read_bytes()))], timeout=30
    )
    assert direct.status_code == 200
    assert _comparable(result.json()) == _comparable(direct.json())
    assert len(_chat_requests(dots)) == 4  # two pages each: the cache is off here


def test_progress_counts_pages_as_they_finish(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = _dots(make_standin, latency_s=0.5)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, page_concurrency=1)  # pages one after the other
    job_id = _submit(gateway.root_url, "ocr").json()["id"]
    running = _wait_status(gateway.root_url, job_id, ("running",))
    assert running["progress"]["pages_total"] == 2
    deadline = time.monotonic() + 10
    while (progress := httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}").json()["progress"])["pages_done"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert progress == {"pages_done": 1, "pages_total": 2}
    assert _wait_status(gateway.root_url, job_id, ("succeeded",))["progress"] == {"pages_done": 2, "pages_total": 2}


def test_a_job_takes_json_input_and_checks_its_fields(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = _dots(make_standin)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]})
    image = base64.b64encode(image_bytes("PNG", (400, 300))).decode()
    response = httpx.post(gateway.root_url + "/v1/jobs", json={"image": image, "task": "ocr"}, timeout=10)
    assert response.status_code == 202, response.text
    assert _wait_status(gateway.root_url, response.json()["id"], ("succeeded",))["progress"]["pages_total"] == 1

    for fields, param in (({}, "task"), ({"task": "chat"}, "task"), ({"task": "ocr", "format": "markdown"}, "format")):
        files = [("file", ("calendar.pdf", CALENDAR.read_bytes()))]
        refused = httpx.post(gateway.root_url + "/v1/jobs", files=files, data=fields, timeout=10)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param
    refused = _submit(gateway.root_url, pages="7")  # the PDF has 2 pages: told at submission
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "pages"
    refused = _submit(gateway.root_url, data=b"%PDF-1.7 truncated")
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "file"


def test_unknown_jobs_are_404(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    gateway = make_gateway({OCR_MODEL: [_dots(make_standin).base_url]})
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        response = httpx.request(method, f"{gateway.root_url}/v1/jobs/job-nope{path}")
        assert response.status_code == 404, (method, path)
        error = response.json()["error"]
        assert (error["type"], error["param"], error["code"]) == ("not_found_error", "id", "job_not_found")


def test_cancelling_a_job_aborts_its_upstream_requests(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    slow = _dots(make_standin, latency_s=10.0)
    gateway = make_gateway({OCR_MODEL: [slow.base_url]}, read_timeout_s=30)
    job_id = _submit(gateway.root_url).json()["id"]
    assert slow.state.wait_for(lambda: len(_chat_requests(slow)) == 2, timeout=10)

    early = httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}/result")
    assert early.status_code == 409
    assert "running" in early.json()["error"]["message"]

    cancelled = httpx.delete(f"{gateway.root_url}/v1/jobs/{job_id}", timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert slow.state.wait_for(lambda: all(r.aborted for r in _chat_requests(slow)), timeout=5), [
        r.outcome for r in _chat_requests(slow)
    ]
    assert httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}").json()["status"] == "cancelled"
    again = httpx.delete(f"{gateway.root_url}/v1/jobs/{job_id}")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"
    no_result = httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}/result")
    assert no_result.status_code == 409
    assert "cancelled" in no_result.json()["error"]["message"]


def test_a_failed_job_carries_the_openai_error(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = _dots(make_standin)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]})
    dots.state.faults.fail_next = 1
    dots.state.faults.fail_status = 400  # not retried: a single-page document fails
    job_id = _submit(gateway.root_url, pages="1").json()["id"]
    failed = _wait_status(gateway.root_url, job_id, ("failed", "succeeded"))
    assert failed["status"] == "failed"
    assert set(failed["error"]) == {"message", "type", "param", "code", "upstream_type"}  # vLLM's own word too
    assert failed["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}/result").status_code == 409


def test_a_finished_result_survives_a_restart(
    tmp_path: Path, make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = _dots(make_standin)
    store = tmp_path / "store.sqlite3"
    first = make_gateway({OCR_MODEL: [dots.base_url]}, store_path=store)
    job_id = _submit(first.root_url).json()["id"]
    _wait_status(first.root_url, job_id, ("succeeded",))
    result = httpx.get(f"{first.root_url}/v1/jobs/{job_id}/result").json()
    first.stop()

    second = make_gateway({OCR_MODEL: [dots.base_url]}, store_path=store)
    assert httpx.get(f"{second.root_url}/v1/jobs/{job_id}").json()["status"] == "succeeded"
    assert httpx.get(f"{second.root_url}/v1/jobs/{job_id}/result").json() == result
    opened = open_store(store, cache_max_bytes=0)
    try:
        assert opened.job_files(job_id) == []  # the uploads went when the job finished
    finally:
        opened.close()


def test_a_stopped_gateway_resumes_its_jobs_and_fails_those_whose_input_is_gone(
    tmp_path: Path, make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    slow = _dots(make_standin, latency_s=1.0)
    store = tmp_path / "store.sqlite3"
    first = make_gateway({OCR_MODEL: [slow.base_url]}, store_path=store)
    kept = _submit(first.root_url).json()["id"]
    lost = _submit(first.root_url).json()["id"]
    assert slow.state.wait_for(lambda: len(_chat_requests(slow)) >= 2, timeout=10)
    first.stop()  # graceful: unfinished jobs stay unfinished in the store
    opened = open_store(store, cache_max_bytes=0)
    try:
        assert {job.id for job in opened.unfinished_jobs()} == {kept, lost}
        with opened._transaction() as db:  # the input of one job is gone (say, a hand-edited store)
            db.execute("DELETE FROM job_files WHERE job_id = ?", (lost,))
    finally:
        opened.close()

    second = make_gateway({OCR_MODEL: [slow.base_url]}, store_path=store)
    assert _wait_status(second.root_url, kept, ("succeeded", "failed"))["status"] == "succeeded"
    failed = _wait_status(second.root_url, lost, ("succeeded", "failed"))
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == INPUT_LOST


def test_finished_jobs_expire(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    gateway = make_gateway({OCR_MODEL: [_dots(make_standin).base_url]}, job_result_ttl_s=0.3)
    job_id = _submit(gateway.root_url, pages="1").json()["id"]
    _wait_status(gateway.root_url, job_id, ("succeeded",))
    deadline = time.monotonic() + 5
    while httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}").status_code != 404:
        assert time.monotonic() < deadline, "the job was never deleted"
        time.sleep(0.05)
    assert httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}/result").status_code == 404


def test_the_same_upload_twice_is_answered_from_the_cache(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = _dots(make_standin)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]})

    def layout(**fields: str) -> dict[str, Any]:
        files = [("file", ("calendar.pdf", CALENDAR.read_bytes()))]
        response = httpx.post(gateway.root_url + "/v1/layout", files=files, data=fields, timeout=30)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    first = layout()
    assert "cached" not in first
    assert len(_chat_requests(dots)) == 2
    second = layout()
    assert second["cached"] is True
    assert second["id"] != first["id"]
    assert _comparable(second) == _comparable(first)
    assert len(_chat_requests(dots)) == 2  # the stand-in saw only the first request's pages

    detect = layout(mode="detect")  # another mode: another answer
    assert "cached" not in detect
    assert len(_chat_requests(dots)) == 4

    metrics = httpx.get(gateway.root_url + "/metrics").text
    assert 'gateway_cache_hits_total{model="dots-ocr",task="layout"} 1.0' in metrics
    assert 'gateway_cache_misses_total{model="dots-ocr",task="layout"} 2.0' in metrics


KEY_A, KEY_B = "sk-team-a-0123456789", "sk-team-b-0123456789"


def _layout_as(gateway: GatewayServer, key: str) -> dict[str, Any]:
    files = [("file", ("calendar.pdf", CALENDAR.read_bytes()))]
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(gateway.root_url + "/v1/layout", files=files, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _job_as(gateway: GatewayServer, key: str) -> dict[str, Any]:
    files = [("file", ("calendar.pdf", CALENDAR.read_bytes(), "application/pdf"))]
    headers = {"Authorization": f"Bearer {key}"}
    submitted = httpx.post(gateway.root_url + "/v1/jobs", files=files, data={"task": "layout"}, headers=headers)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 20
    while (job := httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}", headers=headers).json())["status"] != "succeeded":
        assert job["status"] in ("queued", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    result: dict[str, Any] = httpx.get(f"{gateway.root_url}/v1/jobs/{job_id}/result", headers=headers).json()
    return result


def test_with_keys_one_key_never_sees_another_keys_cached_result(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = _dots(make_standin, latency_s=0.0)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, api_keys=[KEY_A, KEY_B])
    assert "cached" not in _layout_as(gateway, KEY_A)
    # Key B sends the same file, as a job: a fresh answer, so B cannot tell that A processed it.
    assert "cached" not in _job_as(gateway, KEY_B)
    assert len(_chat_requests(dots)) == 4
    # Each key still has its own entries (B's from its job: jobs and routes share a key's cache).
    assert _layout_as(gateway, KEY_B)["cached"] is True
    assert _layout_as(gateway, KEY_A)["cached"] is True
    assert len(_chat_requests(dots)) == 4


def test_the_cache_can_be_shared_across_keys_explicitly(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    dots = _dots(make_standin, latency_s=0.0)
    gateway = make_gateway({OCR_MODEL: [dots.base_url]}, api_keys=[KEY_A, KEY_B], cache_shared_across_keys=True)
    assert "cached" not in _layout_as(gateway, KEY_A)
    assert _layout_as(gateway, KEY_B)["cached"] is True


class _GatewayProcess:
    """`python -m gateway` in its own process group, killed with the group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            env={**os.environ, **env, "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(self.port)},
            cwd=PROJECT_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.root_url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError(f"the gateway did not become ready: {log.read_text()}")
            time.sleep(0.1)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        self.process.wait(30)
        self._log.close()


@pytest.fixture
def gateway_processes() -> Iterator[list[_GatewayProcess]]:
    started: list[_GatewayProcess] = []
    yield started
    for gateway in started:
        gateway.kill()


def test_a_job_survives_kill_9_of_the_gateway(
    tmp_path: Path, make_standin: Callable[..., StandinServer], gateway_processes: list[_GatewayProcess]
) -> None:
    slow = _dots(make_standin, latency_s=1.5)
    log = tmp_path / "gateway.log"
    env = {
        "GATEWAY_MODELS": OCR_MODEL,
        "GATEWAY_UPSTREAMS": json.dumps({OCR_MODEL: slow.base_url}),
        "GATEWAY_STORE_PATH": str(tmp_path / "store.sqlite3"),
        "GATEWAY_HEALTH_INTERVAL_S": "0.2",
        "GATEWAY_LOG_LEVEL": "info",
    }
    first = _GatewayProcess(env, log)
    gateway_processes.append(first)
    job_id = _submit(first.root_url).json()["id"]
    assert slow.state.wait_for(lambda: len(_chat_requests(slow)) == 2, timeout=10)
    first.kill()  # SIGKILL, mid-job: both pages are in flight
    assert slow.state.wait_for(lambda: all(r.aborted for r in _chat_requests(slow)), timeout=5)

    second = _GatewayProcess(env, log)
    gateway_processes.append(second)
    done = _wait_status(second.root_url, job_id, ("succeeded", "failed"), timeout=30)
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"pages_done": 2, "pages_total": 2}
    result = httpx.get(f"{second.root_url}/v1/jobs/{job_id}/result").json()
    assert [page["page"] for page in result["pages"]] == [1, 2]
    assert result["markdown"].count("# A Simulated Page") == 2
    assert len(_chat_requests(slow)) == 4  # both pages again, after the restart
    text = log.read_text()
    assert "resuming 1 job(s)" in text
    assert f"job {job_id} resumed" in text
