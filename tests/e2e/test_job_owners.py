"""Jobs with API keys: each job is its key's (another key gets 404), listing, and the per-key bounds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from launchers.vllm_standin import StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import OCR_MODEL
from tests.running_gateway import GatewayServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
PAGE = FIXTURES / "dotsocr_demo_image2.png"
ALICE, BOB = "sk-alice-0123456789abcdef", "sk-bob-0123456789abcdefgh"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _submit(gateway: GatewayServer, key: str) -> httpx.Response:
    files = [("file", ("page.png", PAGE.read_bytes(), "image/png"))]
    return httpx.post(gateway.root_url + "/v1/jobs", files=files, data={"task": "ocr"}, headers=_auth(key), timeout=30)


def _gateway(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer], **settings: Any
) -> GatewayServer:
    # Slow pages keep the jobs unfinished while the test looks at them.
    dots = make_standin(OCR_MODEL, responder=dots_ocr_answer, max_model_len=32768, latency_s=2.0)
    return make_gateway({OCR_MODEL: [dots.base_url]}, api_keys=[ALICE, BOB], **settings)


def test_another_keys_job_is_404_and_listings_are_per_key(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    gateway = _gateway(make_standin, make_gateway)
    alice_jobs = [_submit(gateway, ALICE).json()["id"] for _ in range(3)]
    bob_job = _submit(gateway, BOB).json()["id"]
    for method, path in (("GET", ""), ("GET", "/result"), ("DELETE", "")):
        response = httpx.request(method, f"{gateway.root_url}/v1/jobs/{alice_jobs[0]}{path}", headers=_auth(BOB))
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "job_not_found"
    assert httpx.get(f"{gateway.root_url}/v1/jobs/{alice_jobs[0]}", headers=_auth(ALICE)).status_code == 200

    listing = httpx.get(gateway.root_url + "/v1/jobs", params={"limit": 2}, headers=_auth(ALICE)).json()
    assert listing["object"] == "list"
    assert [job["id"] for job in listing["data"]] == alice_jobs[:0:-1]  # newest first
    assert listing["has_more"] is True
    rest = httpx.get(
        gateway.root_url + "/v1/jobs", params={"limit": 2, "after": listing["last_id"]}, headers=_auth(ALICE)
    ).json()
    assert ([job["id"] for job in rest["data"]], rest["has_more"]) == ([alice_jobs[0]], False)
    bobs = httpx.get(gateway.root_url + "/v1/jobs", headers=_auth(BOB)).json()["data"]
    assert [job["id"] for job in bobs] == [bob_job]
    # Bob cannot page through Alice's jobs with her ids as cursors either.
    cursor = httpx.get(gateway.root_url + "/v1/jobs", params={"after": alice_jobs[1]}, headers=_auth(BOB))
    assert (cursor.status_code, cursor.json()["error"]["param"]) == (404, "after")

    assert httpx.delete(f"{gateway.root_url}/v1/jobs/{bob_job}", headers=_auth(BOB)).status_code == 200
    cancelled = httpx.get(gateway.root_url + "/v1/jobs", params={"status": "cancelled"}, headers=_auth(BOB)).json()
    assert [job["id"] for job in cancelled["data"]] == [bob_job]
    bad = httpx.get(gateway.root_url + "/v1/jobs", params={"status": "lost"}, headers=_auth(BOB))
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "status")


def test_a_key_past_its_bound_on_unfinished_jobs_gets_a_429(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    gateway = _gateway(make_standin, make_gateway, max_queued_jobs_per_key=2)
    assert [_submit(gateway, ALICE).status_code for _ in range(2)] == [202, 202]
    refused = _submit(gateway, ALICE)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "too_many_jobs"
    assert int(refused.headers["retry-after"]) > 0
    assert _submit(gateway, BOB).status_code == 202  # Bob's bound is his own
