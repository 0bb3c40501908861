"""Prometheus for tests: scripts/monitor.sh with a state folder and port of the test's own."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from testkit.servers import free_port
from testkit.waiting import eventually_blocking

REPO = Path(__file__).resolve().parents[1]
ALERTS = (
    "MockPayBreakerOpen",
    "MockPayConsumerLagHigh",
    "MockPayDeadLetters",
    "MockPayOutboxStalled",
    "MockPayLockTimeouts",
    "MockPayHighErrorRate",
    "MockPayServiceDown",
    "MockPayInstanceDown",
    "MockPaySessionRefreshFailing",
    "MockPayTakeoversRecurring",
    "MockPayLockFallbacks",
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


# The settings scripts/monitor.sh reads to list a service's processes as targets.
SCALE_SETTINGS = {
    "payment": ("PAYMENT_PORT", "PAYMENT_REPLICAS", "PAYMENT_REPLICA_BASE_PORT"),
    "points": ("POINTS_PORT", "POINTS_WORKERS", "POINTS_WORKER_BASE_PORT"),
}


def processes(urls: dict[str, str], service: str) -> dict[str, str]:
    """The service's processes by name: "payment-1", "payment-2" when it has replicas (their
    URLs in `urls` under those names, as four_services yields them), else "payment"."""
    replicas = {name: url for name, url in urls.items() if name.startswith(f"{service}-")}
    return replicas or {service: urls[service]}


def scrape_settings(urls: dict[str, str], service: str) -> dict[str, str]:
    """PAYMENT_PORT, PAYMENT_REPLICAS, PAYMENT_REPLICA_BASE_PORT (or the points ones) for the
    processes of `service` in `urls`: every one, also the count, so .env cannot add others."""
    front, count, base = SCALE_SETTINGS[service]
    found = sorted(processes(urls, service).values(), key=lambda url: int(port(url)))
    return {front: port(urls[service]), count: str(len(found)), base: port(found[0])}


def port(url: str) -> str:
    return url.rsplit(":", 1)[1]


def target_health(url: str) -> dict[tuple[str, str], str]:
    """Each active target of Prometheus at `url` as (job, instance) -> "up" / "down" / ..."""
    answer = httpx.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=5).json()
    return {
        (target["labels"]["job"], target["labels"]["instance"]): target["health"]
        for target in answer["data"]["activeTargets"]
    }


def wait_for_targets(
    url: str, expected: dict[tuple[str, str], str], jobs: set[str] | None = None
) -> None:
    """Until Prometheus's active targets (of `jobs`, or all) are `expected`, (job, instance)
    -> health, within 30 s; the failure names what it reported last."""
    seen: dict[tuple[str, str], str] = {}

    def as_expected() -> bool:
        seen.clear()
        seen.update(
            (target, health)
            for target, health in target_health(url).items()
            if jobs is None or target[0] in jobs
        )
        return seen == expected

    try:
        eventually_blocking(as_expected, timeout=30, interval=0.5)
    except AssertionError:
        raise AssertionError(f"targets {seen}, expected {expected}") from None
