"""Operator commands: `migrate` and `credit USER AMOUNT --reference R`.

Run them through `make migrate` and `make credit`. Each command wires only what it uses:
`migrate` a connection pool, `credit` the payment use cases (no relay, no bank, no
reconciler; the credit writes no event). Expected outcomes are one line and an exit code,
never a traceback: 0 when the wallet holds the credit (now or from before), 1 otherwise.
"""

import argparse
import asyncio
import sys

from services.payment.bootstrap import MIGRATIONS, operator_payments
from services.payment.domain.commands import CreditWallet
from services.payment.domain.errors import CreditReferenceReused, WalletNotFound
from services.payment.settings import PaymentSettings
from shared import db
from shared.contract import MAX_AMOUNT, MIN_AMOUNT
from shared.logs import configure_logging


async def migrate(settings: PaymentSettings) -> int:
    pool = await db.create_pool(settings, settings.payment_mysql_database)
    try:
        applied = await db.apply_migrations(pool, MIGRATIONS)
        print(f"applied: {', '.join(applied) or 'nothing, the schema is current'}")
    finally:
        await db.close_pool(pool)
    return 0


async def credit(settings: PaymentSettings, user_id: str, amount: int, reference: str) -> int:
    async with operator_payments(settings) as payments:
        try:
            result = await payments.credit(CreditWallet(user_id, amount, reference))
        except (WalletNotFound, CreditReferenceReused) as refused:
            print(f"not credited: {refused}", file=sys.stderr)
            return 1
    balance = result.wallet.balance
    if result.replayed:
        print(f"already credited by {reference} (balance {balance})")
    else:
        print(f"wallet {user_id}: balance {balance}")
    return 0


def amount(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of won") from None
    if not MIN_AMOUNT <= value <= MAX_AMOUNT:
        raise argparse.ArgumentTypeError(f"{value} is outside {MIN_AMOUNT}..{MAX_AMOUNT}")
    return value


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.payment.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending database migrations")
    credit_parser = commands.add_parser("credit", help="add money to a wallet (once per reference)")
    credit_parser.add_argument("user_id")
    credit_parser.add_argument("amount", type=amount)
    credit_parser.add_argument("--reference", required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    settings = PaymentSettings()
    configure_logging(settings.log_level)
    if args.command == "migrate":
        return asyncio.run(migrate(settings))
    return asyncio.run(credit(settings, args.user_id, args.amount, args.reference))


if __name__ == "__main__":
    raise SystemExit(main())
