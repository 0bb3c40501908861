"""`python -m services.bank_gateway`: serve the bank gateway with uvicorn."""

from services.bank_gateway.app import create_app
from services.bank_gateway.settings import GatewaySettings
from shared.serve import serve

if __name__ == "__main__":
    settings = GatewaySettings()
    serve(settings, create_app, settings.bank_gateway_host, settings.bank_gateway_port)
