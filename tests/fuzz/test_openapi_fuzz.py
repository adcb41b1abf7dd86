"""Fuzz every operation of the gateway's own OpenAPI document with schemathesis (stateless, seeded).

A real gateway (uvicorn, as in production) serves the stand-in as dots.ocr and the chat model; schemathesis
loads /openapi.json over HTTP and, for each operation, sends a bounded number of generated requests, checking
that none gets a 5xx, that every status and content type is documented and that bodies match their schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from launchers.vllm_standin import StandinConfig, StandinServer
from launchers.vllm_standin.dots_answers import dots_ocr_answer
from tests.conftest import CHAT_MODEL, OCR_MODEL, gateway_settings
from tests.running_gateway import GatewayServer

MAX_EXAMPLES = 25  # per operation; nothing in the document is excluded
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def not_a_server_error_unless_asked_for(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except the documented 504 `request_timeout` a client gets for its own X-Request-Timeout: the
    fuzzer sends deadlines like 5e-324 s, and a gateway that honours them answers exactly that."""
    headers = {name.lower() for name in (case.headers or {})}
    asked = response.status_code == 504 and "x-request-timeout" in headers
    if asked and response.json().get("error", {}).get("code") == "request_timeout":
        return None
    result: bool | None = not_a_server_error(ctx, response, case)
    return result


CHECKS = [
    not_a_server_error_unless_asked_for,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    dots = StandinServer(StandinConfig(models=(OCR_MODEL,), responder=dots_ocr_answer, max_model_len=32768)).start()
    chat = StandinServer(StandinConfig(models=(CHAT_MODEL,))).start()
    store = tmp_path_factory.mktemp("fuzz-store") / "gateway-store.sqlite3"
    settings_ = gateway_settings({OCR_MODEL: [dots.base_url], CHAT_MODEL: [chat.base_url]}, store_path=store)
    gateway = GatewayServer(settings_).start()
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()
        chat.stop()
        dots.stop()


def _with_model(case: Any, model: str | None) -> Any:
    if model is not None and isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = model
    return case


def _fuzz(operation: Any, base_url: str) -> None:
    cases = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in MODES))
    # A random `model` is almost never served: often use a real one, so requests get past routing to the upstream.
    strategy = st.builds(_with_model, cases, st.sampled_from([None, OCR_MODEL, CHAT_MODEL]))

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same cases on every run, so CI is repeatable
        database=None,  # derandomized: nothing to replay, and no .hypothesis directory in the tree
        deadline=None,  # requests over real HTTP: timing varies with the machine
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

    run()


def test_every_operation_survives_fuzzing(fuzzed_gateway: GatewayServer) -> None:
    schema = schemathesis.openapi.from_url(fuzzed_gateway.root_url + "/openapi.json")
    failures: dict[str, BaseException] = {}
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        try:
            _fuzz(operation, fuzzed_gateway.root_url)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports failures as a group
            failures[operation.label] = exc
    assert len(labels) >= 12, labels  # every route of the gateway was found in its document
    assert not failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())
