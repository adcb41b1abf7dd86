"""What operators and Prometheus see: liveness, readiness, metrics and the OpenAPI page."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai

from launchers.vllm_standin import StandinServer
from tests.conftest import CHAT_MODEL, OCR_MODEL
from tests.running_gateway import GatewayServer


def test_health_touches_no_upstream(make_gateway: Callable[..., GatewayServer]) -> None:
    gateway = make_gateway({CHAT_MODEL: ["http://127.0.0.1:9/v1"]}, wait_ready=False)
    response = httpx.get(gateway.root_url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # Load balancers and uptime checks often probe with HEAD: a 405 there would read as "down".
    head = httpx.head(gateway.root_url + "/health")
    assert head.status_code == 200
    assert head.content == b""


def test_ready_is_503_until_every_model_has_a_healthy_upstream(
    make_standin: Callable[..., StandinServer], make_gateway: Callable[..., GatewayServer]
) -> None:
    chat = make_standin(CHAT_MODEL)
    ocr = make_standin(OCR_MODEL)
    ocr.state.faults.healthy = False
    gateway = make_gateway({CHAT_MODEL: [chat.base_url], OCR_MODEL: [ocr.base_url]}, wait_ready=False)
    assert chat.state.wait_for(lambda: gateway.state.models[CHAT_MODEL].ready, timeout=5)
    not_ready = httpx.get(gateway.root_url + "/ready")
    assert not_ready.status_code == 503
    detail = not_ready.json()
    assert detail["status"] == "not_ready"
    assert detail["models"][CHAT_MODEL]["status"] == "ready"
    assert detail["models"][OCR_MODEL] == {
        "status": "unavailable",
        "upstreams": [{"upstream": 0, "healthy": False, "error": "/health answered HTTP 503"}],
    }
    with openai.OpenAI(base_url=gateway.base_url, api_key="x") as client:
        status = {m.id: m.model_dump()["status"] for m in client.models.list().data}
    assert status == {CHAT_MODEL: "ready", OCR_MODEL: "unavailable"}
    ocr.state.faults.healthy = True
    gateway.wait_ready()
    assert httpx.get(gateway.root_url + "/ready").json()["status"] == "ready"


def test_metrics_show_requests_latency_streams_and_upstream_health(gateway: GatewayServer) -> None:
    with openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client:
        client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}])
        list(
            client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
        )
    response = httpx.get(gateway.root_url + "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    upstream_url = gateway.state.models[CHAT_MODEL].upstreams[0].base_url
    for line in (
        'gateway_requests_total{model="qwen3-vl-2b",route="/v1/chat/completions",status="200"} 2.0',
        'gateway_request_duration_seconds_count{model="qwen3-vl-2b",route="/v1/chat/completions"} 2.0',
        'gateway_stream_first_byte_seconds_count{model="qwen3-vl-2b"} 1.0',
        "gateway_requests_in_flight 1.0",  # the /metrics request itself
        f'gateway_upstream_healthy{{model="qwen3-vl-2b",upstream="{upstream_url}"}} 1.0',
    ):
        assert line in text, line
    assert "# TYPE gateway_upstream_errors_total counter" in text
    assert "# TYPE gateway_upstream_retries_total counter" in text
    assert "process_resident_memory_bytes" in text


def test_client_chosen_model_names_never_become_labels(gateway: GatewayServer) -> None:
    for i in range(3):
        httpx.post(gateway.base_url + "/chat/completions", json={"model": f"made-up-{i}", "messages": []})
    assert "made-up" not in httpx.get(gateway.root_url + "/metrics").text


def test_docs_page_and_openapi_describe_every_endpoint(gateway: GatewayServer) -> None:
    docs = httpx.get(gateway.root_url + "/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = httpx.get(gateway.root_url + "/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/v1/models/{model_id}", "/health", "/ready", "/metrics"} <= set(
        spec["paths"]
    )
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    reference = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = spec["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert {"model", "messages"} <= set(request_schema["required"])
    error_reference = chat["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
    assert error_reference.rsplit("/", 1)[-1] in spec["components"]["schemas"]


def test_openapi_documents_validation_errors_as_the_400_they_are(gateway: GatewayServer) -> None:
    # Found by tests/fuzz: FastAPI documented its 422 on every route with parameters; the gateway answers 400.
    spec = httpx.get(gateway.root_url + "/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    bad_request = spec["paths"]["/v1/models"]["get"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert bad_request == {"$ref": "#/components/schemas/ErrorResponse"}
    response = httpx.get(gateway.base_url + "/models", params={"verbose": "maybe"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "verbose"


def test_verbose_model_list_carries_the_whole_catalogue(gateway: GatewayServer) -> None:
    plain = httpx.get(gateway.base_url + "/models").json()
    assert "catalog" not in plain
    verbose = httpx.get(gateway.base_url + "/models", params={"verbose": "true"}).json()
    assert [m["id"] for m in verbose["data"]] == [CHAT_MODEL]
    rows = {row["name"]: row for row in verbose["catalog"]}
    assert len(rows) == 12
    assert (rows["got-ocr2"]["engine"], rows["moondream2"]["engine"]) == ("transformers", "llama.cpp")
    assert rows["moondream3"]["licence"] == "BSL-1.1"
    assert "outside your organisation" in rows["moondream3"]["licence_note"]
    assert {"parameters_b", "weights_gib", "fits_12gb", "fits_16gb", "tasks"} <= set(rows["deepseek-ocr-2"])
    assert rows["qwen2-vl-2b"]["kv_kib_per_token"] == 28  # 2 x 28 layers x 2 KV heads x 128 x 2 bytes / 1024
