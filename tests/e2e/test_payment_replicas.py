"""PAYMENT_REPLICAS=2: two payment processes behind HAProxy, as `make up` runs them. One is
killed by pid while clients pay through HAProxy; no client sees an error, and every
payment is made exactly once."""

import asyncio
import os
import signal
import uuid

import httpx
import pytest

from services.payment.bootstrap import operator_payments
from services.payment.domain.commands import CreditWallet
from services.payment.settings import PaymentSettings
from testkit.processes import ports
from testkit.waiting import eventually, eventually_blocking
from tests.integration.cluster_harness import free_port_run
from tests.supervised import Supervised, supervised_env

pytestmark = pytest.mark.e2e

START = 1_000_000
AMOUNT = 100
CLIENT_RETRIES = 20  # a real client retries 409 REQUEST_IN_PROGRESS and 503, same order_id


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    front = ports("payment")["payment"]
    base = free_port_run(2)
    state = tmp_path_factory.mktemp("replicas")
    env = supervised_env(
        state, "payment",
        PAYMENT_PORT=str(front), PAYMENT_REPLICAS="2", PAYMENT_REPLICA_BASE_PORT=str(base),
        HAPROXY_CHECK_INTERVAL_MS="500",
        # The running record a killed replica leaves behind: a retry waits this long at most.
        IDEMPOTENCY_RUNNING_TTL_SECONDS="2",
    )  # fmt: skip
    running = Supervised(env, state)
    running.script("up")
    running.urls = {"payment": f"http://127.0.0.1:{front}"}
    try:
        yield running
    finally:
        running.script("down")


def test_two_replicas_run_under_supervisord_behind_haproxy(replicas):
    pids = replicas.pids()
    assert {"payment-1", "payment-2", "payment"} <= set(pids), pids
    served = {
        httpx.get(f"{replicas.urls['payment']}/health", timeout=5).status_code for _ in range(4)
    }
    assert served == {200}


async def test_a_replica_killed_under_load_costs_no_client_error(replicas):
    settings = PaymentSettings()
    users = [f"r-{uuid.uuid4().hex[:12]}" for _ in range(4)]
    key = settings.api_keys()[0].split(":")[0]
    async with httpx.AsyncClient(
        base_url=replicas.urls["payment"], headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        for user in users:
            assert (await client.post("/wallets", json={"user_id": user})).status_code in (200, 201)
        async with operator_payments(settings) as service:
            for user in users:
                await service.credit(CreditWallet(user, START, f"seed-{user}"))
        retried: list[int] = []
        done = 0

        async def pay(i: int) -> int:
            nonlocal done
            body = {"order_id": f"o-{uuid.uuid4().hex}", "user_id": users[i % 4], "amount": AMOUNT}
            for _ in range(CLIENT_RETRIES):
                try:
                    answer = await client.post("/payments", json=body)
                except httpx.TransportError:
                    retried.append(0)
                    continue
                if answer.status_code in (409, 503):
                    retried.append(answer.status_code)
                    await asyncio.sleep(float(answer.headers.get("retry-after", "0.5")))
                    continue
                done += 1
                return answer.status_code
            return -1

        async def clients() -> list[int]:
            sem = asyncio.Semaphore(12)

            async def limited(i: int) -> int:
                async with sem:
                    return await pay(i)

            return list(await asyncio.gather(*(limited(i) for i in range(400))))

        load = asyncio.create_task(clients())

        async def a_quarter_through() -> bool:
            return done >= 100

        await eventually(a_quarter_through, timeout=120)
        victim = replicas.pids()["payment-1"]
        os.kill(victim, signal.SIGKILL)
        statuses = await load
    print(f"client retries after the kill: {len(retried)} ({sorted(set(retried))})")
    assert statuses == [201] * 400  # every payment answered 201 in the end, none failed

    async with operator_payments(settings) as service:
        for user in users:
            wallet = await service.get_wallet(user)
            assert wallet.balance == START - 100 * AMOUNT  # each of its 100 payments once

    def replaced() -> bool:
        now = replicas.pids().get("payment-1")
        return now is not None and now != victim

    eventually_blocking(replaced, 60, interval=0.2, message="payment-1 was not started again")
