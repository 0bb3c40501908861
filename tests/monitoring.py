"""Prometheus for tests: scripts/monitor.sh with a state folder and port of the test's own."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from testkit.servers import free_port

REPO = Path(__file__).resolve().parents[1]
ALERTS = (
    "MockPayBreakerOpen",
    "MockPayConsumerLagHigh",
    "MockPayDeadLetters",
    "MockPayOutboxStalled",
    "MockPayLockTimeouts",
    "MockPayHighErrorRate",
)


def monitor(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/monitor.sh", action],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextlib.contextmanager
def prometheus(state_dir: Path, **ports: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Prometheus scraping the services at `ports` (PAYMENT_PORT=... etc.); yields its URL."""
    env = {"MOCKPAY_STATE_DIR": str(state_dir), "PROMETHEUS_PORT": str(free_port()), **ports}
    started = monitor("up", env)
    assert started.returncode == 0, started.stderr
    try:
        yield f"http://127.0.0.1:{env['PROMETHEUS_PORT']}", env
    finally:
        monitor("down", env)


def query(url: str, expr: str) -> list[dict]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]
