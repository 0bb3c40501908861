"""The four services as processes on free loopback ports, started as `make up` starts them.

With PAYMENT_REPLICAS or POINTS_WORKERS above 1 (`make test-ha`) they run under supervisord
through `scripts/services.sh`, exactly as `make up` runs them: payment replicas behind
HAProxy, points workers in one group behind HAProxy, each address the one the tests use.
"""

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from testkit.processes import LOGS, ports, service_process
from tests.integration.cluster_harness import free_port_run
from tests.integration.events_harness import Topics, points_process
from tests.supervised import Supervised, supervised_env

ALL = "fake-bank bank-gateway payment points"
SCALE = {"payment": "PAYMENT_REPLICAS", "points": "POINTS_WORKERS"}


def scale(service: str) -> int:
    """How many processes of the service the environment asks for (make test-ha: 2)."""
    return int(os.environ.get(SCALE[service], "1"))


def replicated() -> bool:
    return any(scale(service) > 1 for service in SCALE)


@contextlib.contextmanager
def four_services(
    points_env: dict[str, str] | None = None, topics: Topics | None = None, **env: str
) -> Iterator[dict[str, str]]:
    """Yields the base URLs by name: bank, gateway, payment, points.

    `env` adds settings for every process (database names, breaker timings, ...),
    `points_env` for the points service alone; the topics are new ones unless given.
    """
    free = ports("bank", "gateway", "payment", "points")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in free.items()}
    topics = topics or Topics.unique()
    settings = {
        **topics.env(),
        "FAKE_BANK_PORT": str(free["bank"]),
        "BANK_GATEWAY_PORT": str(free["gateway"]),
        "BANK_URL": urls["bank"],
        "PAYMENT_PORT": str(free["payment"]),
        "BANK_GATEWAY_URL": urls["gateway"],
        **env,
    }
    if replicated():
        with supervised(settings, points_env or {}, free["points"]) as instances:
            yield {**urls, **instances}
        return
    with (
        service_process("services.bank_gateway.fake_bank", settings, f"{urls['bank']}/health"),
        service_process("services.bank_gateway", settings, f"{urls['gateway']}/health"),
        service_process("services.payment", settings, f"{urls['payment']}/health"),
        points_process(topics, **(points_env or {})) as points_url,
    ):
        yield {**urls, "points": points_url}


@contextlib.contextmanager
def supervised(
    settings: dict[str, str], points_env: dict[str, str], points_port: int
) -> Iterator[dict[str, str]]:
    """All four under supervisord, with the points settings points_process would give; yields
    each replica's and worker's own URL ("payment-1", "points-2", ...) for per-process checks
    (metrics, which HAProxy would hand to one of them per scrape)."""
    state = LOGS / f"four-{os.getpid()}-{time.time_ns()}"  # kept, as other test logs are
    replicas, workers = free_port_run(scale("payment")), free_port_run(scale("points"))
    env = {
        **settings,
        "POINTS_PORT": str(points_port),
        "POINTS_RETRY_BACKOFF_SECONDS": "0.2",
        "POINTS_DB_LOCK_WAIT_SECONDS": "1",
        "PAYMENT_REPLICA_BASE_PORT": str(replicas),
        "POINTS_WORKER_BASE_PORT": str(workers),
        **points_env,
    }
    running = Supervised(supervised_env(state, ALL, **env), state)
    running.script("up")
    try:
        yield {
            f"{service}-{i + 1}": f"http://127.0.0.1:{base + i}"
            for service, base in (("payment", replicas), ("points", workers))
            for i in range(scale(service))
            if scale(service) > 1
        }
    finally:
        running.script("down")


def instances(urls: dict[str, str], service: str) -> list[str]:
    """Each process of a service: its replicas or workers when it has them, else itself."""
    return [url for name, url in urls.items() if name.startswith(f"{service}-")] or [urls[service]]


def points_logs() -> list[Path]:
    """This test run's points service logs, as processes or under supervisord."""
    pid = os.getpid()
    return [
        *LOGS.glob(f"services_points-{pid}-*.log"),
        *LOGS.glob(f"four-{pid}-*/logs/points*.log"),
    ]
