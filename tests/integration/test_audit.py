"""The audit against real MariaDB: a clean shop passes; each corruption is named by its check.

Each test corrupts its own copy of a shop made by the real payment and points code.
"""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from services.audit import AuditReport, checks
from testkit.processes import REPO
from tests.integration.audit_harness import (
    AuditedSystem,
    Shop,
    admin,
    copy_database,
    database_names,
    drop_database,
    seed,
)

pytestmark = pytest.mark.integration

HOUR_AGO = "UTC_TIMESTAMP(6) - INTERVAL 1 HOUR"


@pytest.fixture(scope="module")
async def shop() -> AsyncIterator[tuple[Shop, str, str]]:
    payment_db, points_db = database_names("audsrc")
    yield await seed(payment_db, points_db), payment_db, points_db
    async with admin() as conn:
        await drop_database(conn, payment_db)
        await drop_database(conn, points_db)


@pytest.fixture
async def system(shop: tuple[Shop, str, str]) -> AsyncIterator[AuditedSystem]:
    seeded, source_payment, source_points = shop
    payment_db, points_db = database_names("audchk")
    async with admin() as conn:
        await copy_database(conn, source_payment, payment_db)
        await copy_database(conn, source_points, points_db)
        yield AuditedSystem(payment_db, points_db, seeded, conn)
        await drop_database(conn, payment_db)
        await drop_database(conn, points_db)


def named(report: AuditReport, check: str, **ids: object) -> bool:
    """The report lists a `check` discrepancy carrying all of `ids`."""
    return any(
        f.check == check and all(f.ids.get(key) == value for key, value in ids.items())
        for f in report.findings.discrepancies
    )


async def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(
        subprocess.run, command, cwd=REPO, env=env, capture_output=True, timeout=120
    )


async def a_payment(system: AuditedSystem, status: str) -> tuple[str, str, int]:
    [(payment_id, user_id, amount)] = await system.payment(
        "SELECT payment_id, user_id, amount FROM payments WHERE status = %s"
        " ORDER BY payment_id LIMIT 1",
        status,
    )
    return payment_id, user_id, amount


@pytest.mark.parametrize("batch", [1, 2, 2000])
async def test_clean_shop_has_no_discrepancy_and_nothing_in_flight(system, batch):
    report = await system.audit(audit_batch_size=batch)
    assert report.ok, report.text()
    assert report.in_flight_total == 0, report.text()
    shop = system.shop
    assert report.summary["wallets"] == len(shop.users)
    assert report.summary["money_in_wallets"] == shop.money
    assert report.summary["payments"] == shop.payments
    assert report.summary["payments_cancelled"] == shop.cancelled
    assert report.summary["points_total"] == shop.points
    assert report.summary["charges"] == 2


async def test_wallet_balance_off_by_one_names_the_wallet(system):
    user = system.shop.users[0]
    await system.payment("UPDATE wallets SET balance = balance + 1 WHERE user_id = %s", user)
    report = await system.audit(audit_batch_size=2)
    assert named(report, checks.WALLET_BALANCE_MISMATCH, user_id=user), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_command_names_the_corrupted_wallet_and_exits_1(system):
    user = system.shop.users[1]
    env = {
        **os.environ,
        "PAYMENT_MYSQL_DATABASE": system.payment_db,
        "POINTS_MYSQL_DATABASE": system.points_db,
    }
    command = [sys.executable, "-m", "services.audit", "--json"]
    clean = await run(command, env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    await system.payment("UPDATE wallets SET balance = balance - 7 WHERE user_id = %s", user)
    broken = await run(command, env)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    [finding] = orjson.loads(broken.stdout)["discrepancies"]
    assert finding["check"] == checks.WALLET_BALANCE_MISMATCH
    assert finding["ids"] == {"user_id": user}
    text = await run(command[:-1], env)
    assert text.returncode == 1 and user in text.stdout.decode()


async def test_negative_balance_is_reported_even_when_the_ledger_agrees(system):
    user = system.shop.users[3]  # the idle wallet, balance 0
    await system.payment("ALTER TABLE wallets DROP CONSTRAINT wallets_balance_not_negative")
    await system.payment("UPDATE wallets SET balance = -500 WHERE user_id = %s", user)
    await system.payment(
        "INSERT INTO ledger_entries (user_id, delta, kind, reference, balance_after, created_at)"
        " VALUES (%s, -500, 'CREDIT', 'ops-mistake', -500, UTC_TIMESTAMP(6))",
        user,
    )
    report = await system.audit()
    assert named(report, checks.WALLET_NEGATIVE, user_id=user), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_ledger_entries_of_a_deleted_wallet_are_reported(system):
    user = system.shop.users[2]
    await system.payment("DELETE FROM wallets WHERE user_id = %s", user)
    report = await system.audit(audit_batch_size=1)
    assert named(report, checks.LEDGER_WITHOUT_WALLET, user_id=user), report.text()


async def test_completed_payment_without_its_debit_is_reported(system):
    payment_id, user, amount = await a_payment(system, "COMPLETED")
    await system.payment(
        "DELETE FROM ledger_entries WHERE kind = 'PAYMENT' AND reference = %s", payment_id
    )
    await system.payment(
        "UPDATE wallets SET balance = balance + %s WHERE user_id = %s", amount, user
    )
    report = await system.audit()
    assert named(report, checks.PAYMENT_DEBITS, payment_id=payment_id), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_payment_debited_twice_is_reported(system):
    payment_id, user, amount = await a_payment(system, "COMPLETED")
    await system.payment("ALTER TABLE ledger_entries DROP INDEX ledger_entries_reference")
    await system.payment(
        "INSERT INTO ledger_entries (user_id, delta, kind, reference, balance_after, created_at)"
        " VALUES (%s, %s, 'PAYMENT', %s, 0, UTC_TIMESTAMP(6))",
        user, -amount, payment_id,
    )  # fmt: skip
    await system.payment(
        "UPDATE wallets SET balance = balance - %s WHERE user_id = %s", amount, user
    )
    report = await system.audit()
    assert named(report, checks.PAYMENT_DEBITS, payment_id=payment_id), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_cancelled_payment_without_its_refund_is_reported(system):
    payment_id, user, amount = await a_payment(system, "CANCELLED")
    await system.payment(
        "DELETE FROM ledger_entries WHERE kind = 'REFUND' AND reference = %s", payment_id
    )
    await system.payment(
        "UPDATE wallets SET balance = balance - %s WHERE user_id = %s", amount, user
    )
    report = await system.audit()
    assert named(report, checks.PAYMENT_REFUNDS, payment_id=payment_id), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_ledger_entries_without_payment_charge_or_operator_reference_are_reported(system):
    user = system.shop.users[3]
    for kind, reference in (("PAYMENT", "no-such-payment"), ("CHARGE", "no-such-charge"),
                            ("CREDIT", " "), ("BONUS", "free-money")):  # fmt: skip
        await system.payment(
            "INSERT INTO ledger_entries (user_id, delta, kind, reference, balance_after,"
            " created_at) VALUES (%s, 10, %s, %s, 0, UTC_TIMESTAMP(6))",
            user, kind, reference,
        )  # fmt: skip
    await system.payment("UPDATE wallets SET balance = 40 WHERE user_id = %s", user)
    report = await system.audit(audit_batch_size=1)
    orphans = [
        f for f in report.findings.discrepancies if f.check == checks.LEDGER_WITHOUT_REFERENCE
    ]
    assert len(orphans) == 4 == report.discrepancy_total, report.text()
    assert {f.ids["user_id"] for f in orphans} == {user}


async def test_succeeded_charge_without_its_credit_is_reported(system):
    [(charge_id,)] = await system.payment(
        "SELECT charge_id FROM charges WHERE status = 'SUCCEEDED' LIMIT 1"
    )
    await system.payment(  # the money stays, booked as an operator's credit instead
        "UPDATE ledger_entries SET kind = 'CREDIT', reference = 'ops-moved'"
        " WHERE kind = 'CHARGE' AND reference = %s",
        charge_id,
    )
    report = await system.audit()
    assert named(report, checks.CHARGE_CREDITS, charge_id=charge_id), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_charge_pending_past_the_give_up_age_is_reported_a_young_one_is_in_flight(system):
    user = system.shop.users[3]
    stuck, young = f"c-stuck-{uuid.uuid4().hex[:8]}", f"c-young-{uuid.uuid4().hex[:8]}"
    for charge_id, created in ((stuck, HOUR_AGO), (young, "UTC_TIMESTAMP(6)")):
        await system.payment(
            "INSERT INTO charges (charge_id, user_id, amount, status, created_at, updated_at)"
            f" VALUES (%s, %s, 900, 'PENDING', {created}, {created})",
            charge_id, user,
        )  # fmt: skip
    report = await system.audit(charge_reconcile_give_up_seconds=120)
    assert named(report, checks.CHARGE_PENDING_TOO_LONG, charge_id=stuck), report.text()
    assert report.discrepancy_total == 1, report.text()
    assert [f.ids["charge_id"] for f in report.findings.in_flight] == [young]
    assert report.summary["money_in_flight"] == 1800


async def test_outbox_row_unpublished_past_the_limit_is_reported_a_young_one_is_in_flight(system):
    rows = await system.payment("SELECT id, event_id FROM outbox ORDER BY id LIMIT 2")
    (old_id, old_event), (young_id, _) = rows
    await system.payment(
        f"UPDATE outbox SET published_at = NULL, created_at = {HOUR_AGO} WHERE id = %s", old_id
    )
    await system.payment(
        "UPDATE outbox SET published_at = NULL, created_at = UTC_TIMESTAMP(6) WHERE id = %s",
        young_id,
    )
    report = await system.audit(audit_outbox_max_age_seconds=60)
    assert named(report, checks.OUTBOX_STALLED, outbox_id=old_id, event_id=old_event), report.text()
    assert report.discrepancy_total == 1, report.text()
    assert [f.ids["outbox_id"] for f in report.findings.in_flight] == [young_id]


async def test_points_account_off_its_entries_is_reported(system):
    [(user,)] = await system.points("SELECT user_id FROM points_accounts LIMIT 1")
    await system.points("UPDATE points_accounts SET balance = balance + 3 WHERE user_id = %s", user)
    report = await system.audit(audit_batch_size=1)
    assert named(report, checks.POINTS_BALANCE_MISMATCH, user_id=user), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_old_payment_without_points_is_reported_a_young_one_is_in_flight(system):
    old, user, amount = await a_payment(system, "COMPLETED")
    await system.payment(f"UPDATE payments SET created_at = {HOUR_AGO} WHERE payment_id = %s", old)
    young_rows = await system.payment(
        "SELECT payment_id FROM payments WHERE status = 'COMPLETED' AND payment_id > %s"
        " ORDER BY payment_id LIMIT 1",
        old,
    )
    [(young,)] = young_rows
    for payment_id in (old, young):
        [(delta, who)] = await system.points(
            "SELECT delta, user_id FROM points_entries WHERE payment_id = %s", payment_id
        )
        await system.points("DELETE FROM points_entries WHERE payment_id = %s", payment_id)
        await system.points(
            "UPDATE points_accounts SET balance = balance - %s WHERE user_id = %s", delta, who
        )
    report = await system.audit(audit_grace_seconds=60)
    assert named(report, checks.POINTS_MISSING, payment_id=old, user_id=user), report.text()
    assert report.discrepancy_total == 1, report.text()
    assert [f.ids["payment_id"] for f in report.findings.in_flight] == [young]
    assert report.findings.in_flight[0].check == checks.POINTS_PENDING


async def test_points_of_the_wrong_amount_are_reported(system):
    payment_id, user, _ = await a_payment(system, "COMPLETED")
    await system.points(
        "UPDATE points_entries SET delta = delta + 1 WHERE payment_id = %s", payment_id
    )
    await system.points("UPDATE points_accounts SET balance = balance + 1 WHERE user_id = %s", user)
    report = await system.audit()
    assert named(report, checks.POINTS_WRONG, payment_id=payment_id), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_payment_event_applied_twice_is_reported(system):
    payment_id, user, amount = await a_payment(system, "COMPLETED")
    event_id = str(uuid.uuid4())
    await system.points("ALTER TABLE points_entries DROP INDEX points_entries_payment_kind")
    await system.points(
        "INSERT INTO processed_events (event_id, event_type, processed_at)"
        " VALUES (%s, 'PaymentCompleted', UTC_TIMESTAMP(6))",
        event_id,
    )
    await system.points(
        "INSERT INTO points_entries (user_id, payment_id, event_id, kind, delta, created_at)"
        " VALUES (%s, %s, %s, 'EARN', %s, UTC_TIMESTAMP(6))",
        user, payment_id, event_id, amount // 100,
    )  # fmt: skip
    await system.points(
        "UPDATE points_accounts SET balance = balance + %s WHERE user_id = %s", amount // 100, user
    )
    report = await system.audit()
    assert named(report, checks.POINTS_APPLIED_TWICE, payment_id=payment_id), report.text()
    assert report.discrepancy_total == 1, report.text()


async def test_points_for_a_payment_that_does_not_exist_are_reported(system):
    user = system.shop.users[3]
    await system.points(
        "INSERT INTO points_entries (user_id, payment_id, event_id, kind, delta, created_at)"
        " VALUES (%s, 'zzzz-no-such-payment', 'e-ghost', 'EARN', 50, UTC_TIMESTAMP(6))",
        user,
    )
    await system.points(
        "INSERT INTO processed_events VALUES ('e-ghost', 'PaymentCompleted', UTC_TIMESTAMP(6))"
    )
    await system.points("INSERT INTO points_accounts VALUES (%s, 50, UTC_TIMESTAMP(6))", user)
    report = await system.audit(audit_batch_size=2)
    assert named(report, checks.POINTS_WITHOUT_PAYMENT, payment_id="zzzz-no-such-payment")
    assert report.discrepancy_total == 1, report.text()


async def test_points_entry_without_its_inbox_record_is_reported(system):
    [(event_id, payment_id)] = await system.points(
        "SELECT event_id, payment_id FROM points_entries ORDER BY entry_id LIMIT 1"
    )
    await system.points("DELETE FROM processed_events WHERE event_id = %s", event_id)
    report = await system.audit()
    assert named(report, checks.POINTS_WITHOUT_INBOX, event_id=event_id, payment_id=payment_id)
    assert report.discrepancy_total == 1, report.text()
