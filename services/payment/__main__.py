"""`python -m services.payment`: serve the payment service API with uvicorn."""

from services.payment.entrypoints.app import create_app
from services.payment.settings import PaymentSettings
from shared.serve import serve

if __name__ == "__main__":
    settings = PaymentSettings()
    serve(settings, create_app, settings.payment_host, settings.payment_port)
