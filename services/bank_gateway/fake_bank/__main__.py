"""`python -m services.bank_gateway.fake_bank`: serve the fake bank."""

import uvicorn

from services.bank_gateway.fake_bank.app import create_app
from services.bank_gateway.settings import FakeBankSettings
from shared.logs import configure_logging


def main() -> None:
    settings = FakeBankSettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.fake_bank_host,
        port=settings.fake_bank_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
