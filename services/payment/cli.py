"""Operator commands: `migrate` and `credit USER AMOUNT --reference R`.

Run them through `make migrate` and `make credit`.
"""

import argparse
import asyncio

from services.payment.bootstrap import MIGRATIONS, bootstrap
from services.payment.domain.commands import CreditWallet
from services.payment.settings import PaymentSettings
from shared import db
from shared.logs import configure_logging


async def migrate(settings: PaymentSettings) -> None:
    pool = await db.create_pool(settings, settings.payment_mysql_database)
    try:
        applied = await db.apply_migrations(pool, MIGRATIONS)
        print(f"applied: {', '.join(applied) or 'nothing, the schema is current'}")
    finally:
        await db.close_pool(pool)


async def credit(settings: PaymentSettings, user_id: str, amount: int, reference: str) -> None:
    parts = await bootstrap(settings)
    try:
        wallet = await parts.service.credit(CreditWallet(user_id, amount, reference))
        print(f"wallet {wallet.user_id}: balance {wallet.balance}")
    finally:
        await parts.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.payment.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending database migrations")
    credit_parser = commands.add_parser("credit", help="add money to a wallet (once per reference)")
    credit_parser.add_argument("user_id")
    credit_parser.add_argument("amount", type=int)
    credit_parser.add_argument("--reference", required=True)
    args = parser.parse_args()
    settings = PaymentSettings()
    configure_logging(settings.log_level)
    if args.command == "migrate":
        asyncio.run(migrate(settings))
    else:
        asyncio.run(credit(settings, args.user_id, args.amount, args.reference))


if __name__ == "__main__":
    main()
