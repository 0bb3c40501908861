"""deploy/compose.yaml is checked statically: there is no Docker engine on our machines."""

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_compose_file_lists_every_service_the_makefile_runs():
    compose = (REPO / "deploy" / "compose.yaml").read_text()
    services = set(re.findall(r"^  ([a-z-]+):$", compose, re.M))
    make_targets = {"payment", "points", "bank-gateway", "fake-bank"}
    assert make_targets | {"mysql", "redis", "kafka"} <= services
    assert compose.count("condition: service_healthy") >= 6


def test_compose_file_is_valid():
    assert shutil.which("docker-compose"), "`bash scripts/infra.sh test-packages` installs it"
    (REPO / ".env").touch()
    result = subprocess.run(
        ["docker-compose", "-f", "deploy/compose.yaml", "config", "-q"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
