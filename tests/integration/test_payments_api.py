"""The payment API's contract against the real MariaDB and Redis: answers, replays, refusals."""

import contextlib
import uuid

import pytest

from services.payment.bootstrap import lock_nodes
from services.payment.domain.commands import CancelPayment, CreditWallet, Pay
from services.payment.domain.errors import ConcurrentUpdate
from services.payment.domain.model import LedgerKind, Payment, PaymentStatus
from services.payment.service_layer.handlers import PaymentService
from shared.lock import LockService
from tests.integration.payment_harness import running_payment_app

pytestmark = pytest.mark.integration


async def test_wallet_is_created_once_and_read_back():
    async with running_payment_app() as app:
        user = f"u-{uuid.uuid4().hex[:10]}"
        first = await app.client.post("/wallets", json={"user_id": user})
        again = await app.client.post("/wallets", json={"user_id": user})
        assert (first.status_code, first.json()) == (201, {"user_id": user, "balance": 0})
        assert (again.status_code, again.json()) == (200, {"user_id": user, "balance": 0})
        assert (await app.client.get(f"/wallets/{user}")).json()["balance"] == 0


async def test_creating_a_used_wallet_again_is_a_conflict():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=500)
        answer = await app.client.post("/wallets", json={"user_id": user})
        assert (answer.status_code, answer.json()["code"]) == (409, "WALLET_EXISTS")


async def test_payment_answers_201_and_can_be_read_by_id_and_order_id():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        order = f"o-{uuid.uuid4().hex}"
        paid = await app.pay(user, 2_500, order)
        assert paid.status_code == 201
        body = paid.json()
        assert body["status"] == "COMPLETED" and body["balance_after"] == 7_500
        assert {"payment_id", "order_id", "user_id", "amount", "created_at"} <= body.keys()
        by_id = await app.client.get(f"/payments/{body['payment_id']}")
        by_order = await app.client.get("/payments", params={"order_id": order})
        assert by_id.json() == body == by_order.json()


async def test_second_request_with_same_order_id_replays_first_result():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        order = f"o-{uuid.uuid4().hex}"
        first = await app.pay(user, 1_000, order)
        second = await app.pay(user, 1_000, order)
        assert second.status_code == 201
        assert second.headers["idempotent-replayed"] == "true"
        assert second.json() == first.json()
        assert await app.assert_ledger_consistent(user) == 9_000


async def test_same_order_id_with_another_body_is_refused():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        order = f"o-{uuid.uuid4().hex}"
        await app.pay(user, 1_000, order)
        answer = await app.pay(user, 2_000, order)
        assert (answer.status_code, answer.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
        assert await app.assert_ledger_consistent(user) == 9_000


async def test_declined_payment_is_stored_and_replayed_even_after_a_top_up():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=1_000)
        order = f"o-{uuid.uuid4().hex}"
        first = await app.pay(user, 5_000, order)
        assert (first.status_code, first.json()["code"]) == (402, "INSUFFICIENT_BALANCE")
        await app.parts.service.credit(CreditWallet(user, 10_000, f"top-up-{order}"))
        again = await app.pay(user, 5_000, order)
        assert again.status_code == 402 and again.headers["idempotent-replayed"] == "true"
        assert await app.assert_ledger_consistent(user) == 11_000


async def test_database_replays_a_payment_whose_redis_record_was_lost():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        order = f"o-{uuid.uuid4().hex}"
        first = await app.pay(user, 3_000, order)
        await app.parts.redis.delete(f"idem:payments:{order}")
        again = await app.pay(user, 3_000, order)
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        other_body = await app.pay(user, 4_000, order)
        await app.parts.redis.delete(f"idem:payments:{order}")
        other_body_db = await app.pay(user, 4_000, order)
        assert (
            other_body.json()["code"] == other_body_db.json()["code"] == ("IDEMPOTENCY_KEY_REUSED")
        )
        assert await app.assert_ledger_consistent(user) == 7_000
        assert await app.payment_count(user) == 1


BAD_PAYMENTS = [
    ("float amount", {"amount": 10.0}),
    ("string amount", {"amount": "1000"}),
    ("boolean amount", {"amount": True}),
    ("null amount", {"amount": None}),
    ("zero amount", {"amount": 0}),
    ("negative amount", {"amount": -5}),
    ("amount over the limit", {"amount": 100_000_001}),
    ("order id too long", {"order_id": "o" * 65}),
    ("odd characters in order id", {"order_id": "o/../x"}),
    ("empty user id", {"user_id": ""}),
    ("unknown field", {"currency": "KRW"}),
    ("missing field", {"amount": ...}),
]


# POST /payments has two routes: the lean one (hot_path.py, the default) and FastAPI's.
ROUTES = pytest.mark.parametrize("lean", [True, False], ids=["lean route", "fastapi route"])


@ROUTES
@pytest.mark.parametrize("change", [c for _, c in BAD_PAYMENTS], ids=[n for n, _ in BAD_PAYMENTS])
async def test_malformed_payment_gets_422_and_changes_nothing(change, lean):
    async with running_payment_app(payment_lean_route=lean) as app:
        user = await app.new_wallet(balance=10_000)
        body = {"order_id": f"o-{uuid.uuid4().hex}", "user_id": user, "amount": 1_000}
        body.update(change)
        body = {k: v for k, v in body.items() if v is not ...}
        answer = await app.client.post("/payments", json=body)
        assert answer.status_code == 422
        assert answer.json()["code"] == "VALIDATION_ERROR" and answer.json()["errors"]
        assert await app.assert_ledger_consistent(user) == 10_000


GOOD = b'{"order_id": "O", "user_id": "U", "amount": 5}'
JSON = {"content-type": "application/json"}
BODIES = [
    ("no content type", {}, GOOD, 422),
    ("text/plain", {"content-type": "text/plain"}, GOOD, 422),
    ("empty body", JSON, b"", 422),
    ("a JSON array", JSON, b"[1]", 422),
    ("an amount beyond any float", JSON, GOOD.replace(b"5}", b"1e400}"), 422),
    ("json with a charset", {"content-type": "application/json; charset=utf-8"}, GOOD, 201),
    ("a +json type", {"content-type": "application/merge-patch+json"}, GOOD, 201),
]


@ROUTES
@pytest.mark.parametrize(
    ("headers", "body", "status"), [c[1:] for c in BODIES], ids=[c[0] for c in BODIES]
)
async def test_both_routes_read_a_body_alike(lean, headers, body, status):
    async with running_payment_app(payment_lean_route=lean) as app:
        user = await app.new_wallet(balance=10_000)
        order = f"o-{uuid.uuid4().hex}"
        body = body.replace(b'"O"', f'"{order}"'.encode()).replace(b'"U"', f'"{user}"'.encode())
        answer = await app.client.post("/payments", content=body, headers=headers)
        assert answer.status_code == status, answer.text
        if status == 422:
            assert answer.json()["code"] == "VALIDATION_ERROR" and answer.json()["errors"]
            assert all(error["loc"][0] == "body" for error in answer.json()["errors"])
        assert await app.assert_ledger_consistent(user) == 10_000 - (5 if status == 201 else 0)


async def test_a_body_that_is_not_utf8_is_a_422_on_the_lean_route():
    """FastAPI's own route answers 400 HTTP_ERROR here; the contract says malformed JSON is 422."""
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        answer = await app.client.post(
            "/payments",
            content=b'{"order_id": "\xff"}',
            headers={"content-type": "application/json"},
        )
        assert (answer.status_code, answer.json()["code"]) == (422, "VALIDATION_ERROR")
        assert await app.assert_ledger_consistent(user) == 10_000


async def test_the_lean_route_is_documented_counted_and_keeps_the_other_methods():
    async with running_payment_app() as app:
        schema = (await app.client.get("/openapi.json")).json()
        operation = schema["paths"]["/payments"]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]
        user = await app.new_wallet(balance=100)
        paid = await app.pay(user, 10)
        assert paid.status_code == 201
        assert paid.headers["traceparent"]
        found = await app.client.get("/payments", params={"order_id": paid.json()["order_id"]})
        assert found.json()["payment_id"] == paid.json()["payment_id"]
        metrics = (await app.client.get("/metrics")).text
        assert (
            'http_server_requests_seconds_count{method="POST",outcome="SUCCESS",status="201",uri="/payments"}'
            in metrics
        )


@ROUTES
async def test_malformed_json_and_oversized_bodies_are_refused(lean):
    async with running_payment_app(payment_lean_route=lean) as app:
        broken = await app.client.post(
            "/payments", content=b'{"order_id": ', headers={"content-type": "application/json"}
        )
        assert (broken.status_code, broken.json()["code"]) == (422, "VALIDATION_ERROR")
        huge = await app.client.post(
            "/payments",
            content=b"x" * (64 * 1024 + 1),
            headers={"content-type": "application/json"},
        )
        assert (huge.status_code, huge.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_unknown_wallet_and_payment_are_404_and_not_stored():
    async with running_payment_app() as app:
        order = f"o-{uuid.uuid4().hex}"
        missing = await app.pay("nobody-" + uuid.uuid4().hex[:8], 100, order)
        assert (missing.status_code, missing.json()["code"]) == (404, "WALLET_NOT_FOUND")
        assert await app.parts.redis.get(f"idem:payments:{order}") is None
        unknown = await app.client.get(f"/payments/{uuid.uuid4()}")
        assert (unknown.status_code, unknown.json()["code"]) == (404, "PAYMENT_NOT_FOUND")
        cancel = await app.client.post(f"/payments/{uuid.uuid4()}/cancel")
        assert cancel.status_code == 404


async def test_requests_without_the_right_key_are_401():
    async with running_payment_app() as app:
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
            answer = await app.client.get("/wallets/anyone", headers=headers)
            assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED")
        assert (await app.client.get("/health", headers={"Authorization": ""})).status_code == 200


async def test_payment_fails_closed_with_503_when_redis_is_unreachable_without_fallback():
    # LOCK_FALLBACK=database (the default) serves it from row locks: test_lock_fallback.py
    async with (
        running_payment_app() as app,
        running_payment_app(redis_url="redis://127.0.0.1:1/0", lock_fallback="none") as broken,
    ):
        user = await app.new_wallet(balance=10_000)
        answer = await broken.pay(user, 1_000)
        assert answer.status_code == 503
        assert answer.json()["code"] == "DEPENDENCY_UNAVAILABLE"
        assert answer.headers["retry-after"] == "1"
        assert await app.assert_ledger_consistent(user) == 10_000
        assert (await broken.client.get("/health")).status_code == 503


async def test_lock_wait_exceeded_is_503_lock_timeout_and_changes_nothing():
    async with running_payment_app(lock_wait_seconds=0.2) as app:
        user = await app.new_wallet(balance=10_000)
        order = f"o-{uuid.uuid4().hex}"
        async with contextlib.AsyncExitStack() as stack:  # the app's lock: one node or three
            other_process = LockService(lock_nodes(stack, app.settings) or app.parts.redis)
            async with other_process.hold(f"wallet:{user}", wait_time=1):
                answer = await app.pay(user, 1_000, order)
            await other_process.close()
        assert (answer.status_code, answer.json()["code"]) == (503, "LOCK_TIMEOUT")
        assert "retry-after" in answer.headers
        assert await app.assert_ledger_consistent(user) == 10_000
        retried = await app.pay(user, 1_000, order)  # a 503 is not stored: the retry runs
        assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers


class Refused(Exception):
    """A business exception, not a database one."""


class RefusingAfterTheDebit(PaymentService):
    async def _announce(self, uow, payment, now):
        await super()._announce(uow, payment, now)  # debit, payment, ledger and outbox rows written
        raise Refused


async def test_exception_after_the_debit_statement_rolls_the_debit_back():
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        service = app.parts.service
        failing = RefusingAfterTheDebit(
            service.locking, service.uow_factory, events_topic=service.events_topic
        )
        with pytest.raises(Refused):
            await failing.pay(Pay(f"o-{uuid.uuid4().hex}", user, 4_000))
        assert await app.assert_ledger_consistent(user) == 10_000
        assert await app.payment_count(user) == 0


async def test_write_with_a_stale_fencing_token_is_refused():
    async with running_payment_app(lock_lease_seconds=0.3) as app:
        user = await app.new_wallet(balance=10_000)
        service = app.parts.service
        paused = LockService(app.parts.redis)
        stale = await paused.lock(f"wallet:{user}").try_lock(1, lease_time=0.3)
        assert stale is not None
        # The lease runs out while its holder is paused; another payment takes the lock.
        fresh = LockService(app.parts.redis)
        async with fresh.hold(f"wallet:{user}", wait_time=5) as newer:
            assert newer.token > stale.token
            async with service.uow_factory(newer.token, False) as uow:
                wallet = await uow.wallets.get(user)
                assert wallet is not None
                await uow.wallets.update_balance(wallet, wallet.debited(1_000), service.clock())
                await uow.commit()
        async with service.uow_factory(stale.token, False) as uow:
            wallet = await uow.wallets.get(user)
            assert wallet is not None
            await uow.wallets.update_balance(wallet, wallet.debited(500), service.clock())
            with pytest.raises(ConcurrentUpdate):  # writes reach the database with the commit
                await uow.commit()
        [(balance, token)] = await app.query(
            "SELECT balance, fence_token FROM wallets WHERE user_id = %s", user
        )
        assert (balance, token) == (9_000, newer.token)
        await fresh.close()
        await paused.close()


async def test_a_refused_compare_and_set_writes_nothing_of_its_transaction():
    """The writes and the COMMIT go in one query; the balance update's fencing check fails
    inside it, after the payment row was inserted: the COMMIT must not run."""
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        service = app.parts.service
        [(token,)] = await app.query("SELECT fence_token FROM wallets WHERE user_id = %s", user)
        async with service.uow_factory(token + 10, False) as uow:  # a holder with a newer token
            wallet = await uow.wallets.get(user)
            assert wallet is not None
            await service.book(
                uow, wallet, wallet.credited(1_000), LedgerKind.CREDIT, uuid.uuid4().hex,
                service.clock(),
            )  # fmt: skip
            await uow.commit()
        async with service.uow_factory(token + 5, False) as uow:  # an older holder writes late
            wallet = await uow.wallets.get(user)
            assert wallet is not None
            now = service.clock()
            payment = Payment(
                str(uuid.uuid4()), f"o-{uuid.uuid4().hex}", user, 500,
                PaymentStatus.COMPLETED, wallet.balance - 500, now,
            )  # fmt: skip
            await uow.payments.add(payment)  # queued before the refused balance update
            await service.book(
                uow, wallet, wallet.debited(500), LedgerKind.PAYMENT, payment.payment_id, now
            )
            await service._announce(uow, payment, now)
            with pytest.raises(ConcurrentUpdate):
                await uow.commit()
        assert await app.assert_ledger_consistent(user) == 11_000
        assert await app.payment_count(user) == 0
        assert await app.query("SELECT event_id FROM outbox WHERE event_key = %s", user) == []


async def test_a_refused_cancel_writes_nothing_of_its_transaction():
    """mark_cancelled is a compare-and-set too: a payment cancelled meanwhile stops the query."""
    async with running_payment_app() as app:
        user = await app.new_wallet(balance=10_000)
        service = app.parts.service
        paid = await service.pay(Pay(f"o-{uuid.uuid4().hex}", user, 2_000))
        async with service.reading() as uow:
            wallet = await uow.wallets.get(user)
            assert wallet is not None
        await service.cancel(CancelPayment(paid.payment.payment_id))  # refunded meanwhile
        async with service.uow_factory(None, False) as uow:  # a late second refund
            now = service.clock()
            late = await uow.wallets.get(user)
            assert late is not None
            await uow.payments.mark_cancelled(paid.payment.cancelled(now))  # as _refund does
            await service.book(
                uow, late, late.credited(2_000), LedgerKind.REFUND, paid.payment.payment_id, now
            )  # the balance matches: this compare-and-set would pass
            with pytest.raises(ConcurrentUpdate):
                await uow.commit()
        assert await app.assert_ledger_consistent(user) == 10_000
        [(status,)] = await app.query(
            "SELECT status FROM payments WHERE payment_id = %s", paid.payment.payment_id
        )
        assert status == PaymentStatus.CANCELLED.value
