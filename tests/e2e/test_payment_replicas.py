"""PAYMENT_REPLICAS=2: two payment processes behind HAProxy, as `make up` runs them. One is
killed by pid while clients pay through HAProxy; no client sees an error (HAProxy retries
the killed replica's requests on the other, which takes over its wallet locks and running
idempotency records at once), and every payment is made exactly once."""

import asyncio
import os
import signal
import uuid

import httpx
import pytest

from services.payment.bootstrap import operator_payments
from services.payment.domain.commands import CreditWallet
from services.payment.settings import PaymentSettings
from shared import db
from testkit.processes import ports
from testkit.waiting import eventually, eventually_blocking
from tests.integration.cluster_harness import free_port_run
from tests.monitoring import prometheus, query, scrape_settings, wait_for_targets
from tests.scrape import parse, value
from tests.supervised import Supervised, supervised_env

pytestmark = pytest.mark.e2e

START = 1_000_000
AMOUNT = 100
CLIENT_RETRIES = 20  # a real client retries 409 REQUEST_IN_PROGRESS and 503, same order_id
PAYMENTS = 400


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    front = ports("payment")["payment"]
    base = free_port_run(2)
    state = tmp_path_factory.mktemp("replicas")
    env = supervised_env(
        state, "payment",
        PAYMENT_PORT=str(front), PAYMENT_REPLICAS="2", PAYMENT_REPLICA_BASE_PORT=str(base),
        HAPROXY_CHECK_INTERVAL_MS="500",
        # One lock hold per payment: the killed replica almost surely holds wallet locks
        # that the other one's payments are waiting for (their lease is 30 s).
        PAYMENT_BATCH_MAX="1",
    )  # fmt: skip
    running = Supervised(env, state)
    running.script("up")
    running.urls = {"payment": f"http://127.0.0.1:{front}"} | {
        f"payment-{i + 1}": f"http://127.0.0.1:{base + i}" for i in range(2)
    }
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
        retried: list[str] = []  # what a client saw before its 201
        done = 0

        async def pay(i: int) -> int:
            nonlocal done
            body = {"order_id": f"o-{uuid.uuid4().hex}", "user_id": users[i % 4], "amount": AMOUNT}
            for _ in range(CLIENT_RETRIES):
                try:
                    answer = await client.post("/payments", json=body)
                except httpx.TransportError as exc:
                    retried.append(type(exc).__name__)
                    continue
                if answer.status_code in (409, 503):
                    retried.append(f"{answer.status_code} {answer.text[:60]}")
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

            return list(await asyncio.gather(*(limited(i) for i in range(PAYMENTS))))

        load = asyncio.create_task(clients())

        async def a_quarter_through() -> bool:
            return done >= 100

        await eventually(a_quarter_through, timeout=120)
        victim = replicas.pids()["payment-1"]
        os.kill(victim, signal.SIGKILL)
        statuses = await load
    print(f"client retries after the kill: {len(retried)} ({sorted(set(retried))})")
    assert statuses == [201] * PAYMENTS  # every payment answered 201 in the end, none failed
    assert retried == []  # and the first time: no 409, no 503, no broken connection

    pool = await db.create_pool(settings, settings.payment_mysql_database)
    try:
        async with pool.acquire() as conn, conn.cursor() as cur:
            for user in users:
                await cur.execute(
                    "SELECT w.balance, (SELECT SUM(delta) FROM ledger_entries l"
                    " WHERE l.user_id = w.user_id), (SELECT COUNT(*) FROM payments p"
                    " WHERE p.user_id = w.user_id) FROM wallets w WHERE w.user_id = %s",
                    (user,),
                )
                balance, ledger, payments = await cur.fetchone()
                assert balance == ledger == START - 100 * AMOUNT  # each of its payments once
                assert payments == 100
    finally:
        await db.close_pool(pool)

    def replaced() -> bool:
        now = replicas.pids().get("payment-1")
        return now is not None and now != victim

    eventually_blocking(replaced, 60, interval=0.2, message="payment-1 was not started again")

    def answers() -> bool:
        """Started is not yet serving: the tests after this one scrape it directly."""
        try:
            return httpx.get(f"{replicas.urls['payment-1']}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    eventually_blocking(answers, 60, interval=0.2, message="payment-1 did not serve again")


REPLICAS = ("payment-1", "payment-2")


async def test_prometheus_scrapes_each_replica_and_adds_their_counters_up(replicas, tmp_path):
    """Scraped through HAProxy, each scrape reached one replica or the other and the total
    was one replica's count; one target per replica gives the sum of both."""
    settings = PaymentSettings()
    key = settings.api_keys()[0].split(":")[0]
    user = f"m-{uuid.uuid4().hex[:12]}"

    def completed(replica: str) -> float:
        scraped = httpx.get(f"{replicas.urls[replica]}/metrics", timeout=5).text
        return value(parse(scraped), "mockpay_payments_total", outcome="completed")

    async with httpx.AsyncClient(
        base_url=replicas.urls["payment"], headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        assert (await client.post("/wallets", json={"user_id": user})).status_code in (200, 201)
        async with operator_payments(settings) as service:
            await service.credit(CreditWallet(user, START, f"seed-{user}"))

        async def each_replica_completed_one() -> bool:
            body = {"order_id": f"o-{uuid.uuid4().hex}", "user_id": user, "amount": AMOUNT}
            assert (await client.post("/payments", json=body)).status_code == 201
            counts = [await asyncio.to_thread(completed, replica) for replica in REPLICAS]
            return all(count > 0 for count in counts)

        await eventually(each_replica_completed_one, timeout=60, interval=0.1)
    direct = {replica: completed(replica) for replica in REPLICAS}  # no payment runs now

    with prometheus(tmp_path, **scrape_settings(replicas.urls, "payment")) as (url, _):
        up = {("payment", replica): "up" for replica in REPLICAS}
        await asyncio.to_thread(wait_for_targets, url, up, {"payment"})
        completed_expr = 'mockpay_payments_total{job="payment", outcome="completed"}'

        async def summed() -> bool:
            total = await asyncio.to_thread(query, url, f"sum({completed_expr})")
            return bool(total) and float(total[0]["value"][1]) == sum(direct.values())

        await eventually(summed, timeout=30, interval=0.5)
        per_replica = query(url, completed_expr)
        assert {s["metric"]["instance"]: float(s["value"][1]) for s in per_replica} == direct
