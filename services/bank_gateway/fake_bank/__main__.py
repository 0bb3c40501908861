"""`python -m services.bank_gateway.fake_bank`: serve the fake bank with uvicorn."""

from services.bank_gateway.fake_bank.app import create_app
from services.bank_gateway.settings import FakeBankSettings
from shared.serve import serve

if __name__ == "__main__":
    settings = FakeBankSettings()
    serve(settings, create_app, settings.fake_bank_host, settings.fake_bank_port)
