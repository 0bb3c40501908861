"""A payment service killed mid-charge: the retry is answered soon after the restart, once.

The services run as `make up` runs them, under supervisord; the test kills the payment
process with SIGKILL while its bank call is in flight (the fake bank takes 2.5 s to answer,
after it has moved the money), then retries the same charge_id as a client would.
"""

import contextlib
import os
import signal
import threading
import time
import uuid

import httpx
import pytest

from services.bank_gateway.settings import FakeBankSettings
from services.payment.settings import PaymentSettings
from testkit.processes import ports
from testkit.waiting import eventually_blocking
from tests.supervised import Supervised, supervised_env

pytestmark = pytest.mark.e2e

DEADLINE = 60  # generous; the figures are printed, not asserted


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    free = ports("bank", "gateway", "payment")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in free.items()}
    state = tmp_path_factory.mktemp("crash")
    env = supervised_env(
        state, "fake-bank bank-gateway payment",
        FAKE_BANK_PORT=str(free["bank"]), BANK_URL=urls["bank"],
        BANK_GATEWAY_PORT=str(free["gateway"]), BANK_GATEWAY_URL=urls["gateway"],
        PAYMENT_PORT=str(free["payment"]),
        CHARGE_RECONCILE_MIN_AGE_SECONDS="600",  # the retry must settle it, not the reconciler
    )  # fmt: skip
    running = Supervised(env, state)
    running.script("up")
    try:
        yield running, urls
    finally:
        running.script("down")


def test_charge_in_flight_when_the_process_dies_is_answered_after_restart_without_charging_again(
    system,
):
    running, urls = system
    key = PaymentSettings().api_keys()[0]
    client = httpx.Client(
        base_url=urls["payment"], headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    admin = FakeBankSettings().fake_bank_admin_token.get_secret_value()
    bank = httpx.Client(
        base_url=urls["bank"], headers={"Authorization": f"Bearer {admin}"}, timeout=10
    )
    user = f"crash-{uuid.uuid4().hex[:10]}"
    assert client.post("/wallets", json={"user_id": user}).status_code == 201
    body = {"charge_id": f"c-{user}", "amount": 70_000}
    assert bank.put("/faults", json={"latency_ms": 2500}).status_code == 200
    posts_before = bank.get("/stats").json()["transfer_requests"]

    def charge() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the process dies under it: no answer
            client.post(f"/wallets/{user}/charges", json=body)

    threading.Thread(target=charge, daemon=True).start()
    eventually_blocking(
        lambda: bank.get("/stats").json()["transfer_requests"] > posts_before, 30,
        message="the charge never reached the bank",
    )  # fmt: skip
    os.kill(running.pids()["payment"], signal.SIGKILL)
    killed_at = time.monotonic()
    bank.put("/faults", json={})

    def healthy() -> bool:
        try:
            return httpx.get(f"{urls['payment']}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    eventually_blocking(healthy, DEADLINE, interval=0.1, message="payment not restarted")
    restarted_at = time.monotonic()
    answers: list[int] = []

    def answered() -> bool:
        answer = client.post(f"/wallets/{user}/charges", json=body)
        answers.append(answer.status_code)
        return answer.status_code != 409

    eventually_blocking(answered, DEADLINE, interval=0.2, message=f"still 409: {answers}")
    answered_at = time.monotonic()
    final = client.post(f"/wallets/{user}/charges", json=body)
    print(
        f"restart {restarted_at - killed_at:.1f} s after kill -9; answer "
        f"{answered_at - restarted_at:.1f} s after restart; statuses {answers}"
    )
    assert answers[-1] == 201 and final.status_code == 201
    assert final.json()["balance_after"] == 70_000
    assert client.get(f"/wallets/{user}").json()["balance"] == 70_000
    assert bank.get(f"/accounts/{user}").json()["withdrawn"] == 70_000
    assert bank.get("/stats").json()["transfer_requests"] == posts_before + 1  # never re-sent
