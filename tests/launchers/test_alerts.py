"""compose/prometheus/alerts.yml: valid, unit-tested with promtool, loaded by every generated stack."""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess

import pytest
import yaml

from launchers.compose import ALERT_RULES
from tests.launchers.test_compose import COMPOSE_DIR, PROFILES, VLLM_SERIES, gateway_series

ALERTS_TEST = ALERT_RULES.parent / "alerts_test.yml"
EXPECTED = {"UpstreamDown", "UpstreamEjectedRepeatedly", "HighErrorRatio", "HighLatencyP99", "QueueBuildingUp"}
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (apt-get install prometheus; .ci/run installs it)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, check=False)


def rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@needs_promtool
def test_each_alert_fires_and_stays_quiet_as_its_unit_test_says() -> None:
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested() -> None:
    tested = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    for name in EXPECTED:
        cases = [case for test in tested["tests"] for case in test["alert_rule_test"] if case["alertname"] == name]
        # At least one evaluation where it must fire, and one where it must not.
        assert any(case["exp_alerts"] for case in cases), name
        assert any(not case["exp_alerts"] for case in cases), name


def test_rules_read_only_series_that_exist() -> None:
    found = {str(rule["alert"]) for rule in rules()}
    assert found == EXPECTED
    known = gateway_series() | VLLM_SERIES
    for rule in rules():
        expr = re.sub(r'"[^"]*"', "", str(rule["expr"]))  # label values are not series names
        names = {name for name in re.findall(r"[a-zA-Z_:][\w:]*", expr) if name.startswith(("gateway_", "vllm:"))}
        assert names, rule["alert"]
        assert names <= known, f"{rule['alert']}: unknown series {names - known}"
        assert rule["labels"]["severity"] in ("critical", "warning")  # type: ignore[index]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_stack_loads_the_rules(profile: str) -> None:
    folder = COMPOSE_DIR / profile
    config = yaml.safe_load((folder / "prometheus.yml").read_text(encoding="utf-8"))
    (rule_file,) = config["rule_files"]
    # From the committed config's folder the path is the repository's file (what promtool checks) ...
    assert (folder / rule_file).resolve() == ALERT_RULES.resolve()
    # ... and in the container, where the config is /etc/prometheus/prometheus.yml, the file mounted beside it.
    assert posixpath.normpath(posixpath.join("/etc/prometheus", rule_file)) == "/etc/prometheus/alerts.yml"
    prometheus = yaml.safe_load((folder / "compose.yaml").read_text(encoding="utf-8"))["services"]["prometheus"]
    mounts = {
        target: source for source, target, _ in (v.split(":") for v in prometheus["volumes"] if v.endswith(":ro"))
    }
    assert (folder / mounts["/etc/prometheus/alerts.yml"]).resolve() == ALERT_RULES.resolve()
