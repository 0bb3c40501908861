"""`python -m services.bank_gateway`: serve the bank gateway."""

import uvicorn

from services.bank_gateway.app import create_app
from services.bank_gateway.settings import GatewaySettings
from shared.logs import configure_logging


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.bank_gateway_host,
        port=settings.bank_gateway_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
