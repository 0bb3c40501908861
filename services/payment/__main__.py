"""`python -m services.payment`: serve the payment API with uvicorn."""

import uvicorn

from services.payment.entrypoints.app import create_app
from services.payment.settings import PaymentSettings
from shared.logs import configure_logging


def main() -> None:
    settings = PaymentSettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.payment_host,
        port=settings.payment_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
