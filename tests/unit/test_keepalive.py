"""Clients drop idle connections before the server does: a request never leaves on a
connection the server is closing at that moment (it would fail as "server disconnected",
a 502 from a healthy bank). Every server here is uvicorn with its default keep-alive."""

import uvicorn

from services.bank_gateway.app import bank_connector
from services.bank_gateway.settings import GatewaySettings
from services.payment.bootstrap import gateway_client
from services.payment.settings import PaymentSettings

# uvicorn's default keep-alive, which shared.serve runs with
SERVER_KEEPALIVE = uvicorn.Config(app="unused:app").timeout_keep_alive


async def test_the_gateway_drops_idle_bank_connections_before_the_bank_does() -> None:
    settings = GatewaySettings(bank_gateway_token="t")
    connector = bank_connector(settings)
    try:
        assert connector._keepalive_timeout == settings.bank_keepalive_seconds
        assert settings.bank_keepalive_seconds < SERVER_KEEPALIVE
    finally:
        await connector.close()


async def test_the_payment_service_drops_idle_gateway_connections_before_the_gateway_does() -> None:
    settings = PaymentSettings()
    async with gateway_client(settings) as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry == settings.bank_gateway_keepalive_seconds
    assert settings.bank_gateway_keepalive_seconds < SERVER_KEEPALIVE
