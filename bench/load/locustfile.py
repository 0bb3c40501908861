"""The shop's traffic, for Locust (`python -m bench.load` runs it headless).

Before users start, the driver makes `LOAD_WALLETS` wallets topped up through the bank; the
first `LOAD_HOT_WALLETS` of them get `LOAD_HOT_SHARE` of all payments. Each user then runs
the weighted mix at `LOAD_RATE / LOAD_USERS` tasks per second. A payment that times out or
gets a 503 is sent again with the same order id, as a real client does; a replayed order id
must come back with `Idempotent-Replayed: true` and the same payment, or it is an error.
"""

import collections
import itertools
import logging
import os
import random
import time
import uuid
from pathlib import Path

from locust import FastHttpUser, constant_throughput, events, task
from locust.exception import StopUser

from bench.load.settings import LoadSettings
from bench.load.shop import TIMEOUT, Verdict, bad_requests, judge, payment_amount, pick_wallet

SETTINGS = LoadSettings()
RUN = f"load-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:6]}"
AUTH = {"Authorization": f"Bearer {SETTINGS.api_key()}"}
WALLETS: list[str] = []
PAID: collections.deque = collections.deque(maxlen=2000)  # (payment_id, order_id, user, amount)
COUNTER = itertools.count()


def _ids(prefix: str) -> str:
    return f"{RUN}-{prefix}{next(COUNTER)}"


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@events.test_start.add_listener
def load_the_shop(**_) -> None:
    """The wallets the driver made (bench/load/setup.py), named in LOAD_WALLETS_FILE."""
    path = os.environ.get("LOAD_WALLETS_FILE")
    if path:
        WALLETS.extend(line for line in Path(path).read_text().splitlines() if line)
    if len(WALLETS) <= SETTINGS.load_hot_wallets:
        logging.error("no wallets: run the load with python -m bench.load (make load)")


class Shopper(FastHttpUser):
    host = SETTINGS.load_host
    wait_time = constant_throughput(SETTINGS.load_rate / max(SETTINGS.load_users, 1))
    network_timeout = SETTINGS.load_timeout_seconds
    connection_timeout = SETTINGS.load_timeout_seconds
    default_headers = AUTH

    def on_start(self) -> None:
        if len(WALLETS) <= SETTINGS.load_hot_wallets:
            raise StopUser  # no shop to shop in: load_the_shop said why

    def _send(self, kind: str, name: str, method: str, path: str, **kwargs) -> tuple[Verdict, dict]:
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as r:
            status = r.status_code or TIMEOUT
            verdict = judge(kind, status)
            if verdict in (Verdict.OK, Verdict.OK_RETRY):
                r.success()
            else:
                r.failure(f"{kind}: unexpected {status}")
            return verdict, _json(r) if status != TIMEOUT else {}

    def _until_done(self, kind: str, name: str, method: str, path: str, **kwargs) -> dict | None:
        """Send, and on a timeout, 409 or 503 send the very same request again."""
        for attempt in range(SETTINGS.load_retries + 1):
            label = name if attempt == 0 else f"{name} (retry)"
            verdict, body = self._send(kind, label, method, path, **kwargs)
            if verdict is Verdict.OK:
                return body
            if verdict is Verdict.ERROR:
                return None
            time.sleep(min(0.2 * 2**attempt, 2.0))  # a client's backoff; gevent yields here
        return None

    @task(SETTINGS.load_mix_pay)
    def pay(self) -> None:
        user = pick_wallet(WALLETS, SETTINGS.load_hot_wallets, SETTINGS.load_hot_share)
        order = {"order_id": _ids("o"), "user_id": user, "amount": payment_amount()}
        paid = self._until_done("pay", "POST /payments", "POST", "/payments", json=order)
        if paid and paid.get("status") == "COMPLETED":
            PAID.append((paid["payment_id"], order["order_id"], user, order["amount"]))

    @task(SETTINGS.load_mix_replay)
    def replay(self) -> None:
        """The client never saw the answer and sends the order again: same payment, no debit."""
        if not PAID:
            return
        payment_id, order_id, user, amount = random.choice(PAID)
        order = {"order_id": order_id, "user_id": user, "amount": amount}
        name = "POST /payments (same order id)"
        with self.client.post("/payments", json=order, name=name, catch_response=True) as r:
            same = r.status_code == 201 and _json(r).get("payment_id") == payment_id
            if same and r.headers.get("idempotent-replayed") == "true":
                r.success()
            elif r.status_code == 409:
                r.success()  # the first attempt still runs
            else:
                r.failure(f"replay of {order_id}: {r.status_code}, not the stored payment")

    @task(SETTINGS.load_mix_cancel)
    def cancel(self) -> None:
        if not PAID:
            return
        payment_id = PAID.popleft()[0]
        path = f"/payments/{payment_id}/cancel"
        self._until_done("cancel", "POST /payments/{payment_id}/cancel", "POST", path)

    @task(SETTINGS.load_mix_topup)
    def topup(self) -> None:
        user = random.choice(WALLETS)
        charge = {"charge_id": _ids("c"), "amount": random.randint(10_000, 100_000)}
        path = f"/wallets/{user}/charges"
        self._until_done("topup", "POST /wallets/{user_id}/charges", "POST", path, json=charge)

    @task(SETTINGS.load_mix_wallet)
    def new_wallet(self) -> None:
        user = _ids("n")
        self._until_done("wallet", "POST /wallets", "POST", "/wallets", json={"user_id": user})

    @task(SETTINGS.load_mix_read)
    def read(self) -> None:
        if PAID and random.random() < 0.5:
            payment_id = random.choice(PAID)[0]
            self._send("read", "GET /payments/{payment_id}", "GET", f"/payments/{payment_id}")
        else:
            user = random.choice(WALLETS)
            self._send("read", "GET /wallets/{user_id}", "GET", f"/wallets/{user}")

    @task(SETTINGS.load_mix_points if SETTINGS.load_points_host else 0)
    def points(self) -> None:
        user = random.choice(WALLETS)
        url = f"{SETTINGS.load_points_host}/points/{user}"
        self._send("points", "GET /points/{user_id}", "GET", url)

    @task(SETTINGS.load_mix_bad)
    def bad_request(self) -> None:
        bad = random.choice(bad_requests(RUN, random.choice(WALLETS)))
        headers = None if bad.authorised else {"Authorization": ""}
        with self.client.request(
            bad.method, bad.path, name=bad.name, json=bad.body, headers=headers,
            catch_response=True,
        ) as r:  # fmt: skip
            if r.status_code == bad.expected:
                r.success()
            else:
                r.failure(f"{bad.name}: {r.status_code}, expected {bad.expected}")
