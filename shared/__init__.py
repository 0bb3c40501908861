"""Code that two or more Mock-Pay services use: settings, db, http, lock, idempotency, events."""
