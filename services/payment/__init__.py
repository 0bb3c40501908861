"""The payment service: wallets and payments, idempotent and serialised per wallet."""
