"""The Prometheus configuration and rules pass promtool; Prometheus survives a kill -9."""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from testkit.waiting import eventually_blocking
from tests.dashboard import expressions, metric_names
from tests.monitoring import ALERTS, REPO, monitor, prometheus

CONFIG = REPO / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=CONFIG, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "args", [("check", "config", "prometheus.yml"), ("check", "rules", "rules.yml")]
)
def test_promtool_accepts_the_configuration_and_the_rules(args):
    checked = promtool(*args)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_rule_passes_its_unit_tests():
    tested = promtool("test", "rules", "tests/rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not():
    rules = (CONFIG / "rules.yml").read_text()
    assert set(re.findall(r"alert: (\w+)", rules)) == set(ALERTS)
    cases = re.findall(
        r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", (CONFIG / "tests/rules_test.yml").read_text()
    )
    for alert in ALERTS:
        assert (alert, " []") in cases, f"{alert}: no case where it stays quiet"
        assert (alert, "") in cases, f"{alert}: no case where it fires"


def test_prometheus_killed_by_pid_comes_back_with_its_rules(tmp_path):
    with prometheus(tmp_path) as (url, env):
        pid = int((tmp_path / "prometheus" / "prometheus.pid").read_text())
        os.kill(pid, signal.SIGKILL)

        def gone() -> bool:
            try:
                httpx.get(f"{url}/-/ready", timeout=1)
            except httpx.HTTPError:
                return True
            return False

        eventually_blocking(gone, timeout=10, interval=0.1, message="prometheus still answers")
        restarted = monitor("up", env)
        assert restarted.returncode == 0, restarted.stderr
        rules = httpx.get(f"{url}/api/v1/rules", params={"type": "alert"}, timeout=5).json()
        loaded = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
        assert loaded == set(ALERTS)


def test_every_dashboard_expression_parses(tmp_path):
    exprs = expressions()
    assert len(exprs) >= 15
    rules = tmp_path / "dashboard_rules.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for index, expr in enumerate(exprs):
        lines += [f"      - record: dashboard:panel_{index}", f"        expr: {json.dumps(expr)}"]
    rules.write_text("\n".join(lines) + "\n")
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_recorded_series_the_dashboard_reads_is_a_recording_rule():
    recorded = {name for name in metric_names() if ":" in name}
    rules = set(re.findall(r"record: (\S+)", (CONFIG / "rules.yml").read_text()))
    assert recorded and recorded <= rules


# ---------------------------------------------------------------- scrape targets (rendered)

SINGLE = {
    "PAYMENT_PORT": "8000",
    "POINTS_PORT": "8003",
    "PAYMENT_REPLICAS": "1",
    "POINTS_WORKERS": "1",
}


def rendered(state_dir: Path, **settings: str) -> dict[str, list[dict]]:
    """scripts/monitor.sh render with `settings` (over .env's); the target files it wrote."""
    done = monitor("render", {"MOCKPAY_STATE_DIR": str(state_dir), **settings})
    assert done.returncode == 0, done.stderr
    folder = state_dir / "prometheus" / "targets"
    return {job: json.loads((folder / f"{job}.json").read_text()) for job in ("payment", "points")}


def listed(groups: list[dict]) -> dict[str, list[str]]:
    return {group["labels"]["instance"]: group["targets"] for group in groups}


def test_rendered_targets_name_each_replica_and_worker_on_its_own_port(tmp_path):
    targets = rendered(
        tmp_path, PAYMENT_PORT="9700", PAYMENT_REPLICAS="3", PAYMENT_REPLICA_BASE_PORT="9710",
        POINTS_PORT="9703", POINTS_WORKERS="2", POINTS_WORKER_BASE_PORT="9720",
    )  # fmt: skip
    assert listed(targets["payment"]) == {
        "payment-1": ["127.0.0.1:9710"],
        "payment-2": ["127.0.0.1:9711"],
        "payment-3": ["127.0.0.1:9712"],
    }  # not HAProxy's 9700
    assert listed(targets["points"]) == {
        "points-1": ["127.0.0.1:9720"],
        "points-2": ["127.0.0.1:9721"],
    }
    checked = promtool("check", "config", str(tmp_path / "prometheus" / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "WARNING" not in checked.stdout + checked.stderr  # it found and read both files


def test_one_process_is_one_target_on_the_service_port(tmp_path):
    targets = rendered(tmp_path, **{**SINGLE, "PAYMENT_PORT": "9800", "POINTS_PORT": "9803"})
    assert listed(targets["payment"]) == {"payment": ["127.0.0.1:9800"]}
    assert listed(targets["points"]) == {"points": ["127.0.0.1:9803"]}


def test_the_committed_targets_are_what_the_default_settings_render(tmp_path):
    """deploy/compose.yaml runs Prometheus on the committed files as they are."""
    targets = rendered(tmp_path, **SINGLE)
    for job, groups in targets.items():
        assert groups == json.loads((CONFIG / "targets" / f"{job}.json").read_text())


def test_a_second_render_with_more_replicas_replaces_the_targets(tmp_path):
    rendered(tmp_path, **{**SINGLE, "PAYMENT_REPLICAS": "2", "PAYMENT_REPLICA_BASE_PORT": "9910"})
    again = rendered(tmp_path, **SINGLE)
    assert listed(again["payment"]) == {"payment": ["127.0.0.1:8000"]}
