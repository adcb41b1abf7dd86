"""`python -m launchers compose`: the generated compose files, their validators, Grafana and the Dockerfile."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.models.memory_plan import ModelPlan, Plan
from gateway.models.registry import ModelConfig, load_registry
from gateway.observability.metrics import GatewayMetrics
from gateway.settings import PROJECT_ROOT, Settings
from gateway.upstream.replica_metrics import ReplicaCollector
from gateway.upstream.served_models import build_served_models
from launchers.__main__ import main
from launchers.compose import GRAFANA_DIR, render, service_name

COMPOSE_DIR = PROJECT_ROOT / "compose"
PROFILES = ("12gb", "16gb")
DASHBOARD = GRAFANA_DIR / "dashboards" / "vlm-gateway.json"
IMAGE = "vllm/vllm-openai:v0.32.0"
# The vLLM series the dashboard may read (vLLM's /metrics families), as exposed.
VLLM_SERIES = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    *(f"vllm:time_to_first_token_seconds_{suffix}" for suffix in ("bucket", "sum", "count")),
}
needs_docker_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (apt-get install docker-compose; .ci/run installs it)",
)
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (apt-get install prometheus; .ci/run installs it)",
)


@pytest.fixture(scope="module")
def registry() -> dict[str, ModelConfig]:
    return load_registry(PROJECT_ROOT / "model_configs", PROJECT_ROOT / "prompts")


def model_plan(name: str, utilization: float = 0.3) -> ModelPlan:
    return ModelPlan(
        name=name,
        gpu_memory_utilization=utilization,
        max_model_len=8192,
        max_num_seqs=4,
        enforce_eager=False,
        kv_cache_dtype="auto",
        max_pixels=1_000_000,
        weights_gib=4.0,
        activation_gib=0.5,
        overhead_gib=0.6,
        kv_bytes_per_token=28_672,
        kv_cache_gib=0.8,
    )


PLAN = Plan(
    gpu_mem_gib=16,
    headroom_gib=1.0,
    models=(model_plan("dots-ocr", 0.4), model_plan("qwen3-vl-2b"), model_plan("phi-3.5-vision")),
    fits=True,
)


def fake_serve_args(config: ModelConfig, plan: ModelPlan, *, host: str, port: int) -> list[str]:
    return [config.hf_repo, "--served-model-name", config.name, "--host", host, "--port", str(port), "--x", "$HOME"]


def generate(registry: dict[str, ModelConfig], out_dir: Path = COMPOSE_DIR / "16gb") -> dict[str, str]:
    return render(
        PLAN, registry, invocation="--profile 16gb", out_dir=out_dir, vllm_image=IMAGE, serve_args=fake_serve_args
    )


def services(files: dict[str, str]) -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(files["compose.yaml"])
    return dict(compose["services"])


def test_each_model_gets_a_private_vllm_server_on_the_gpu(registry: dict[str, ModelConfig]) -> None:
    found = services(generate(registry))
    for model in PLAN.models:
        server = found[service_name(model.name)]
        assert server["image"] == IMAGE
        # The image's entrypoint is `vllm serve`: the command starts with the repo id, never `serve`.
        assert server["command"][:3] == [registry[model.name].hf_repo, "--served-model-name", model.name]
        assert "--port" in server["command"]
        assert server["command"][server["command"].index("--port") + 1] == "8000"
        assert "ports" not in server
        assert server["ipc"] == "host"
        assert server["environment"] == {"HF_TOKEN": "${HF_TOKEN:-}"}
        assert server["volumes"] == ["hf-cache:/root/.cache/huggingface", "vllm-cache:/root/.cache/vllm"]
        devices = server["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}]
        assert "/health" in " ".join(server["healthcheck"]["test"])
        assert server["healthcheck"]["start_period"] == "900s"
    assert service_name("phi-3.5-vision") == "vllm-phi-3-5-vision"  # a dot would read as a domain


def test_servers_start_one_after_another_then_the_gateway(registry: dict[str, ModelConfig]) -> None:
    found = services(generate(registry))
    chain = [service_name(model.name) for model in PLAN.models] + ["gateway"]
    assert "depends_on" not in found[chain[0]]
    for previous, current in itertools.pairwise(chain):
        assert found[current]["depends_on"] == {previous: {"condition": "service_healthy"}}


def test_gateway_routes_each_model_to_its_server(registry: dict[str, ModelConfig]) -> None:
    gateway = services(generate(registry))["gateway"]
    environment = gateway["environment"]
    settings = Settings(models=environment["GATEWAY_MODELS"], upstreams=json.loads(environment["GATEWAY_UPSTREAMS"]))
    assert sorted(settings.models) == sorted(model.name for model in PLAN.models)
    assert settings.upstreams["phi-3.5-vision"] == ["http://vllm-phi-3-5-vision:8000/v1"]
    assert gateway["ports"] == ["8000:8000"]
    assert gateway["build"] == {"context": "../..", "dockerfile": "Dockerfile"}
    assert "/health" in " ".join(gateway["healthcheck"]["test"])


def test_dollar_signs_reach_vllm_unexpanded(registry: dict[str, ModelConfig]) -> None:
    server = services(generate(registry))["vllm-dots-ocr"]
    assert server["command"][-1] == "$$HOME"  # compose turns `$$` into `$`


def test_prometheus_scrapes_the_gateway_and_every_server(registry: dict[str, ModelConfig]) -> None:
    files = generate(registry)
    jobs = {job["job_name"]: job for job in yaml.safe_load(files["prometheus.yml"])["scrape_configs"]}
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:8000"]
    targets = jobs["vllm"]["static_configs"][0]["targets"]
    assert targets == ["vllm-dots-ocr:8000", "vllm-qwen3-vl-2b:8000", "vllm-phi-3-5-vision:8000"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services(files)["prometheus"]["volumes"]


def test_output_is_headed_and_deterministic(registry: dict[str, ModelConfig]) -> None:
    files = generate(registry)
    assert files == generate(registry)
    for text in files.values():
        assert text.startswith("# Generated by python -m launchers compose --profile 16gb; do not edit.\n")


def test_paths_follow_the_output_folder(registry: dict[str, ModelConfig], tmp_path: Path) -> None:
    found = services(generate(registry, out_dir=tmp_path))
    assert (tmp_path / found["gateway"]["build"]["context"]).resolve() == PROJECT_ROOT.resolve()
    provisioning = found["grafana"]["volumes"][0].split(":")[0]
    assert (tmp_path / provisioning).resolve() == (GRAFANA_DIR / "provisioning").resolve()


def fake_planner(monkeypatch: pytest.MonkeyPatch, registry: dict[str, ModelConfig], plan: Plan) -> None:
    def resolve_plan(**_: object) -> tuple[Plan, dict[str, ModelConfig]]:
        return plan, registry

    monkeypatch.setitem(sys.modules, "launchers.planner", types.SimpleNamespace(resolve_plan=resolve_plan))


def test_cli_writes_both_files(
    registry: dict[str, ModelConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_planner(monkeypatch, registry, PLAN)
    assert main(["compose", "--gpu-mem", "16", "--out", str(tmp_path)]) == 0
    header = "# Generated by python -m launchers compose --gpu-mem 16; do not edit.\n"
    assert (tmp_path / "compose.yaml").read_text().startswith(header)
    assert (tmp_path / "prometheus.yml").read_text().startswith(header)
    assert "wrote" in capsys.readouterr().out


def test_cli_refuses_a_plan_that_does_not_fit(
    registry: dict[str, ModelConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    too_big = Plan(gpu_mem_gib=12, headroom_gib=1.0, models=PLAN.models, fits=False, fixes=("drop phi-3.5-vision",))
    fake_planner(monkeypatch, registry, too_big)
    assert main(["compose", "--gpu-mem", "12", "--out", str(tmp_path)]) == 2
    assert "drop phi-3.5-vision" in capsys.readouterr().err
    assert not (tmp_path / "compose.yaml").exists()
    assert main(["compose"]) == 2  # neither --profile nor --gpu-mem


@pytest.mark.parametrize("profile", PROFILES)
def test_committed_files_are_what_the_generator_writes(profile: str) -> None:
    from launchers.planner import resolve_plan
    from launchers.serve_args import VLLM_IMAGE, serve_args

    plan, configs = resolve_plan(profile=profile, gpu_mem=None, models=None)
    out_dir = COMPOSE_DIR / profile
    files = render(
        plan, configs, invocation=f"--profile {profile}", out_dir=out_dir, vllm_image=VLLM_IMAGE, serve_args=serve_args
    )
    for name, text in files.items():
        committed = (out_dir / name).read_text(encoding="utf-8")
        assert committed == text, (
            f"compose/{profile}/{name} drifted: run python -m launchers compose --profile {profile}"
        )


@needs_docker_compose
@pytest.mark.parametrize("profile", PROFILES)
def test_docker_compose_accepts_the_committed_file(profile: str) -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_DIR / profile / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The GPU reservation and the start order survive compose's own reading of the file.
    found = yaml.safe_load(result.stdout)["services"]
    servers = [name for name in found if name.startswith("vllm-")]
    assert servers
    for name in servers:
        assert found[name]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    chained = [name for name in [*servers, "gateway"] for name in found[name].get("depends_on", {}).values()]
    assert chained == [{"condition": "service_healthy"}] * len(servers)


@needs_promtool
@pytest.mark.parametrize("profile", PROFILES)
def test_promtool_accepts_the_prometheus_config(profile: str) -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(COMPOSE_DIR / profile / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def gateway_series() -> set[str]:
    """Every series name the gateway exposes: counters as `_total`, histograms as `_bucket/_sum/_count`."""
    names: set[str] = set()
    # The per-replica gauges come from a collector the app registers, read from the replicas at scrape time.
    for family in [*GatewayMetrics().registry.collect(), *ReplicaCollector({}).collect()]:
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            names.add(family.name)
    return names


def test_dashboard_reads_only_series_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    datasource = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] == "vlm-gateway"
    known = gateway_series() | VLLM_SERIES
    used: set[str] = set()
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            names = {
                name
                for name in re.findall(r"[a-zA-Z_:][\w:]*", target["expr"])
                if name.startswith(("gateway_", "vllm:"))
            }
            assert names, target["expr"]
            assert names <= known, f"{panel['title']}: unknown series {names - known}"
            used |= names
    wanted = {
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_upstream_errors_total",
        "gateway_upstream_retries_total",
        "gateway_requests_in_flight",
        "gateway_stream_first_byte_seconds_bucket",
        "gateway_pages_total",
        "gateway_upstream_outstanding_requests",
        "gateway_upstream_ejections_total",
        "gateway_upstream_failovers_total",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
    }
    assert wanted <= used


def test_grafana_loads_the_dashboard_the_compose_file_mounts(registry: dict[str, ModelConfig]) -> None:
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "vlm-gateway.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    volumes = services(generate(registry))["grafana"]["volumes"]
    assert f"../grafana/dashboards:{path}:ro" in volumes


def test_dockerfile_runs_the_gateway_as_a_non_root_user() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#")
    assert "\nFROM python:3.11-slim\n" in dockerfile
    assert 'CMD ["python", "-m", "gateway"]' in dockerfile
    assert "\nUSER gateway\n" in dockerfile
    assert "EXPOSE 8000" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert "/health" in dockerfile
    assert "pip install . " in dockerfile  # no [test] extra
    ignored = {line for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")}
    assert {".venv", "tests", "bench/results", ".git"} <= ignored
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for path in source.split():
            assert (PROJECT_ROOT / path).exists(), path
            assert path not in ignored, path


def test_the_gateway_resizes_pages_to_the_cap_its_servers_run_with(
    monkeypatch: pytest.MonkeyPatch, registry: dict[str, ModelConfig], tmp_path: Path
) -> None:
    # A plan that lowers dots-mocr's pixel cap: if the gateway resized to the config's larger cap, vLLM would
    # resize again and the layout boxes would no longer map to the client's pixels.
    from gateway.models.fitting import PlanOverrides, plan_models
    from launchers.serve_args import VLLM_IMAGE, serve_args

    configs = {name: registry[name] for name in ("dots-mocr", "paddleocr-vl")}
    plan = plan_models(list(configs.values()), 16, overrides={"dots-mocr": PlanOverrides(max_pixels=4_014_080)})
    files = render(plan, configs, invocation="test", out_dir=tmp_path, vllm_image=VLLM_IMAGE, serve_args=serve_args)
    stack = yaml.safe_load(files["compose.yaml"])["services"]
    command = stack[service_name("dots-mocr")]["command"]
    served_cap = json.loads(command[command.index("--mm-processor-kwargs") + 1])["size"]["longest_edge"]
    for key, value in stack["gateway"]["environment"].items():
        monkeypatch.setenv(key, value)
    # The container's own config folders are /app/...; here the repo's are the same files.
    monkeypatch.delenv("GATEWAY_MODEL_CONFIGS_DIR", raising=False)
    monkeypatch.delenv("GATEWAY_PROMPTS_DIR", raising=False)
    gateway_settings = Settings()
    served = build_served_models(registry, gateway_settings)
    assert served["dots-mocr"].image.max_pixels == served_cap == 4_014_080
