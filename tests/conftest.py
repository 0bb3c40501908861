"""Test-wide settings: tests use their own databases and Redis db, never the running system's."""

import os

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("PAYMENT_MYSQL_DATABASE", "mockpay_payment_test")
os.environ.setdefault("POINTS_MYSQL_DATABASE", "mockpay_points_test")
os.environ.setdefault("EVENTS_TOPIC", "test.payment.events")
os.environ.setdefault("DEAD_LETTER_TOPIC", "test.payment.events.DLT")
os.environ.setdefault("POINTS_GROUP_ID", "test-mockpay-points")
