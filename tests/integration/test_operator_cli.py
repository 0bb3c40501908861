"""`make credit` as an operator runs it: a process, its one-line answer and its exit code."""

import os
import subprocess
import sys
import uuid

import pytest

from services.payment.bootstrap import operator_payments
from services.payment.settings import PaymentSettings
from testkit.processes import REPO

pytestmark = pytest.mark.integration


def credit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.payment.cli", "credit", *args],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def new_wallet() -> str:
    user = f"cli-{uuid.uuid4().hex[:12]}"
    async with operator_payments(PaymentSettings()) as payments:
        await payments.create_wallet(user)
    return user


async def balance_of(user: str) -> int:
    async with operator_payments(PaymentSettings()) as payments:
        return (await payments.get_wallet(user)).balance


async def test_a_credit_repeated_with_its_reference_says_so_and_adds_nothing():
    user = await new_wallet()
    reference = f"ref-{user}"
    first = credit(user, "700", "--reference", reference)
    assert (first.returncode, first.stdout.strip()) == (0, f"wallet {user}: balance 700")
    again = credit(user, "700", "--reference", reference)
    assert again.returncode == 0
    assert again.stdout.strip() == f"already credited by {reference} (balance 700)"
    assert await balance_of(user) == 700


async def test_a_reused_reference_with_another_amount_or_wallet_is_refused_with_the_reason():
    user, other = await new_wallet(), await new_wallet()
    reference = f"ref-{user}"
    assert credit(user, "700", "--reference", reference).returncode == 0
    for args in ((user, "800"), (other, "700")):
        refused = credit(*args, "--reference", reference)
        assert refused.returncode == 1
        assert f"already credited 700 to wallet {user!r}" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert (await balance_of(user), await balance_of(other)) == (700, 0)


async def test_an_unknown_wallet_or_a_bad_amount_exits_non_zero_without_a_traceback():
    missing = credit(f"nobody-{uuid.uuid4().hex[:8]}", "100", "--reference", uuid.uuid4().hex)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    user = await new_wallet()
    for amount in ("0", "-5", "1.5", "100000001"):
        bad = credit(user, amount, "--reference", uuid.uuid4().hex)
        assert bad.returncode == 2 and "amount" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    assert await balance_of(user) == 0
