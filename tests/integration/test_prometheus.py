"""The Prometheus configuration and rules pass promtool; Prometheus survives a kill -9."""

import json
import os
import re
import signal
import subprocess

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
