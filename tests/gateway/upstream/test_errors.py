import pytest

from gateway.errors import UpstreamProtocolError, UpstreamStatusError
from gateway.upstream.errors import parse_upstream_error


def test_nested_vllm_error_passes_through() -> None:
    body = b'{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":"model","code":404}}'
    error = parse_upstream_error(404, body)
    assert isinstance(error, UpstreamStatusError)
    assert error.body() == {
        "error": {
            "message": "The model `x` does not exist.",
            "type": "not_found_error",
            "param": "model",
            "code": 404,
            "upstream_type": "NotFoundError",
        }
    }
    assert error.status_code == 404


def test_flat_pre_0_10_1_error_is_read() -> None:
    body = b'{"object":"error","message":"bad temperature","type":"BadRequestError","param":"temperature","code":400}'
    error = parse_upstream_error(400, body)
    assert (error.status_code, error.message, error.error_type, error.param) == (
        400,
        "bad temperature",
        "invalid_request_error",
        "temperature",
    )
    assert error.body()["error"]["upstream_type"] == "BadRequestError"


def test_unauthorized_from_upstream_is_the_gateways_fault() -> None:
    error = parse_upstream_error(401, b'{"error":"Unauthorized"}')
    assert isinstance(error, UpstreamProtocolError)
    assert error.status_code == 502
    assert "api_key_env" in error.message


def test_fastapi_detail_is_read() -> None:
    error = parse_upstream_error(404, b'{"detail":"Not Found"}')
    assert (error.status_code, error.message) == (404, "Not Found")


@pytest.mark.parametrize("body", [b"<html>Bad Gateway</html>", b"", b"[1,2]", b'"oops"'])
def test_anything_else_keeps_the_status_and_quotes_the_body(body: bytes) -> None:
    error = parse_upstream_error(502, body)
    assert error.status_code == 502
    assert error.message.startswith("upstream returned HTTP 502")
    assert error.error_type == "bad_gateway"
    assert error.body()["error"]["upstream_type"] == "BadGateway"


@pytest.mark.parametrize(
    ("status", "vllm_type", "openai_type"),
    [
        (400, "Bad Request", "invalid_request_error"),  # a pydantic validation error as vLLM renders it
        (404, "NotFoundError", "not_found_error"),
        (413, "BadRequestError", "invalid_request_error"),
        (429, "TooManyRequests", "rate_limit_error"),
        (500, "InternalServerError", "internal_error"),
        (503, "ServiceUnavailableError", "service_unavailable"),
    ],
)
def test_vllm_error_types_become_the_gateways_vocabulary(status: int, vllm_type: str, openai_type: str) -> None:
    body = b'{"error":{"message":"m","type":"' + vllm_type.encode() + b'","param":null,"code":' + str(status).encode()
    error = parse_upstream_error(status, body + b"}}")
    assert error.body()["error"]["type"] == openai_type
    assert error.body()["error"]["upstream_type"] == vllm_type
