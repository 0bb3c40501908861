"""`make up` keeps the services alive: supervisord starts a killed service again, no human."""

import os
import signal
import time

import httpx
import pytest

from testkit.processes import ports
from testkit.waiting import eventually_blocking
from tests.supervised import Supervised, supervised_env

pytestmark = pytest.mark.e2e

RECOVERY_DEADLINE = 60  # generous: the machine may be busy; the figure is measured, not asserted


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    free = ports("bank", "payment")
    state = tmp_path_factory.mktemp("supervised")
    env = supervised_env(
        state, "fake-bank payment",
        FAKE_BANK_PORT=str(free["bank"]), PAYMENT_PORT=str(free["payment"]),
    )  # fmt: skip
    running = Supervised(env, state)
    running.script("up")
    running.urls = {name: f"http://127.0.0.1:{port}" for name, port in free.items()}
    try:
        yield running
    finally:
        running.script("down")


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_status_shows_each_service_with_pid_and_uptime(supervised):
    table = supervised.script("status")
    for name in ("fake-bank", "payment"):
        assert any(
            line.startswith(name) and "RUNNING" in line and "pid" in line and "uptime" in line
            for line in table.splitlines()
        ), table


def test_payment_killed_by_pid_is_healthy_again_without_a_human(supervised):
    before = supervised.pids()
    os.kill(before["payment"], signal.SIGKILL)
    killed_at = time.monotonic()

    def restarted() -> bool:
        now = supervised.pids().get("payment")
        return now is not None and now != before["payment"] and healthy(supervised.urls["payment"])

    eventually_blocking(
        restarted, RECOVERY_DEADLINE, interval=0.2,
        message=f"payment not back: {supervised.log('payment')}",
    )  # fmt: skip
    print(f"payment healthy again {time.monotonic() - killed_at:.1f} s after kill -9")
    assert supervised.pids()["fake-bank"] == before["fake-bank"]  # the others are untouched


def test_up_again_right_after_a_kill_never_leaves_a_service_down(supervised):
    """The old script trusted a pid file: a just-killed, unreaped pid looked "already running"."""
    os.kill(supervised.pids()["fake-bank"], signal.SIGKILL)
    supervised.script("up")  # returns only once every service is RUNNING and healthy
    assert healthy(supervised.urls["bank"]) and healthy(supervised.urls["payment"])


def test_down_stops_every_process_it_started(tmp_path):
    free = ports("bank")
    running = Supervised(
        supervised_env(tmp_path, "fake-bank", FAKE_BANK_PORT=str(free["bank"])), tmp_path
    )
    running.script("up")
    pids = [*running.pids().values(), int((tmp_path / "run" / "supervisord.pid").read_text())]
    running.script("down")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not healthy(f"http://127.0.0.1:{free['bank']}")
