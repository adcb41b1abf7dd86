from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.jobs.store_schema import open_store
from gateway.models.registry import ConfigError, load_registry
from gateway.settings import PROJECT_ROOT, Settings
from gateway.upstream.served_models import build_served_models

REGISTRY = load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")


def test_defaults_listen_on_all_interfaces_port_8000(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_HOST", "GATEWAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)


def test_environment_is_read_with_the_gateway_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9001")
    monkeypatch.setenv("GATEWAY_MODELS", "dots-ocr, qwen3-vl-2b")
    monkeypatch.setenv(
        "GATEWAY_UPSTREAMS", '{"dots-ocr": "http://a:1/v1", "qwen3-vl-2b": ["http://b:2/v1", "http://c:3/v1/"]}'
    )
    settings = Settings()
    assert settings.port == 9001
    assert settings.models == ["dots-ocr", "qwen3-vl-2b"]
    assert settings.upstreams == {"dots-ocr": ["http://a:1/v1"], "qwen3-vl-2b": ["http://b:2/v1", "http://c:3/v1"]}


@pytest.mark.parametrize(
    "upstreams",
    [{"m": "ftp://a/v1"}, {"m": "http://a:1/"}, {"m": []}],
)
def test_bad_upstream_urls_fail_fast(upstreams: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(upstreams=upstreams)  # type: ignore[arg-type]


def test_served_models_default_to_every_model_an_engine_serves() -> None:
    served = build_served_models(REGISTRY, Settings())
    assert set(served) == set(REGISTRY)  # every config names an engine: vLLM, llama.cpp or transformers serve
    assert "moondream2" in served  # llama-server: one more OpenAI-compatible upstream


def test_a_model_no_engine_serves_fails_fast() -> None:
    config = REGISTRY["moondream2"]
    unserved = config.model_copy(update={"engine": None, "unsupported_reason": "no engine", "serving": None})
    with pytest.raises(ConfigError, match="which no engine serves: no engine"):
        build_served_models({**REGISTRY, "moondream2": unserved}, Settings(models=["moondream2"]))


def test_upstream_override_replaces_the_configured_urls() -> None:
    settings = Settings(models=["dots-ocr"], upstreams={"dots-ocr": ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]})
    served = build_served_models(REGISTRY, settings)
    assert [u.base_url for u in served["dots-ocr"].upstreams] == ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
    assert served["dots-ocr"].upstreams[0].root_url == "http://gpu1:8000"


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (Settings(models=["nope"]), "GATEWAY_MODELS names 'nope'"),
        (Settings(upstreams={"nope": ["http://a:1/v1"]}), "GATEWAY_UPSTREAMS names 'nope'"),
    ],
)
def test_names_that_do_not_add_up_fail_fast(settings: Settings, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        build_served_models(REGISTRY, settings)


def test_upstream_api_key_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    config = REGISTRY["qwen2-vl-2b"].model_copy(update={"api_key_env": "QWEN2_KEY"})
    registry = {**REGISTRY, "qwen2-vl-2b": config}
    monkeypatch.delenv("QWEN2_KEY", raising=False)
    with pytest.raises(ConfigError, match="QWEN2_KEY is not set"):
        build_served_models(registry, Settings(models=["qwen2-vl-2b"]))
    monkeypatch.setenv("QWEN2_KEY", "sk-upstream")
    upstream = build_served_models(registry, Settings(models=["qwen2-vl-2b"]))["qwen2-vl-2b"].upstreams[0]
    assert upstream.auth_headers() == {"Authorization": "Bearer sk-upstream"}


def test_attempt_order_rotates_and_puts_failed_replicas_last() -> None:
    settings = Settings(
        models=["dots-ocr"], upstreams={"dots-ocr": ["http://a:1/v1", "http://b:1/v1", "http://c:1/v1"]}
    )
    model = build_served_models(REGISTRY, settings)["dots-ocr"]
    firsts = [model.attempt_order()[0].base_url for _ in range(3)]
    assert sorted(firsts) == ["http://a:1/v1", "http://b:1/v1", "http://c:1/v1"]
    model.upstreams[0].healthy = False
    model.upstreams[1].healthy = True
    for _ in range(3):
        order = model.attempt_order()
        assert order[0].base_url == "http://b:1/v1"
        assert order[-1].base_url == "http://a:1/v1"


def test_a_served_pixel_cap_replaces_the_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MODEL_MAX_PIXELS", '{"dots-ocr": 4014080}')
    served = build_served_models(REGISTRY, Settings(models=["dots-ocr", "qwen3-vl-2b"]))
    assert served["dots-ocr"].image.max_pixels == 4014080
    assert served["dots-ocr"].image.factor == 28
    assert served["qwen3-vl-2b"].image == REGISTRY["qwen3-vl-2b"].image


@pytest.mark.parametrize(
    ("caps", "complaint"),
    [
        ({"dots-ocr": 100}, "must stay within"),
        ({"dots-ocr": 99_999_999}, "must stay within"),
        ({"nope": 5}, "names 'nope'"),
    ],
)
def test_a_served_pixel_cap_must_make_sense(caps: dict[str, int], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        build_served_models(REGISTRY, Settings(models=["dots-ocr"], model_max_pixels=caps))


def test_the_store_defaults_to_the_users_data_folder_not_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    store_path = Settings().store_path
    assert store_path == tmp_path / "data" / "vlm-gateway" / "gateway-store.sqlite3"
    store = open_store(store_path, cache_max_bytes=0)  # creates the folder on a fresh machine
    store.close()
    assert store_path.is_file()
    assert not (tmp_path / "gateway-store.sqlite3").exists()
    monkeypatch.delenv("XDG_DATA_HOME")
    assert Settings().store_path == Path.home() / ".local" / "share" / "vlm-gateway" / "gateway-store.sqlite3"


def test_connection_limits_have_safe_defaults_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.max_header_bytes, defaults.max_header_count) == (65536, 100)
    assert (defaults.header_timeout_s, defaults.body_timeout_s, defaults.max_connections) == (10.0, 30.0, 2048)
    monkeypatch.setenv("GATEWAY_MAX_CONNECTIONS", "500")
    monkeypatch.setenv("GATEWAY_HEADER_TIMEOUT_S", "2.5")
    assert (Settings().max_connections, Settings().header_timeout_s) == (500, 2.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_header_bytes": 100},  # smaller than any real client's headers
        {"max_header_count": 2},
        {"header_timeout_s": 0},
        {"body_timeout_s": -1},
        {"max_connections": 0},
    ],
)
def test_connection_limits_that_cannot_work_fail_fast(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


def test_with_keys_metrics_and_the_cache_are_private_unless_opened() -> None:
    settings = Settings()
    assert settings.metrics_require_key is None  # None: guarded when keys are on (gateway/app.py)
    assert settings.cache_shared_across_keys is False
