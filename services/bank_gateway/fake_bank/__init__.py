"""A fake external bank for local runs and tests: accounts, idempotent transfers, faults."""
