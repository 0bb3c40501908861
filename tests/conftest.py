"""Test-wide settings: tests use their own databases and Redis db, never the running system's."""

import os
from pathlib import Path

# `.env.test` (git-ignored, optional): overrides for running a second checkout's suite beside
# this one on the same servers, e.g. other database names and another Redis db.
_LOCAL = Path(__file__).resolve().parents[1] / ".env.test"
if _LOCAL.exists():
    for _line in _LOCAL.read_text().splitlines():
        if _line.strip() and not _line.startswith("#") and "=" in _line:
            _key, _value = _line.split("=", 1)
            os.environ.setdefault(_key.strip(), _value.strip())

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("PAYMENT_MYSQL_DATABASE", "mockpay_payment_test")
os.environ.setdefault("POINTS_MYSQL_DATABASE", "mockpay_points_test")
os.environ.setdefault("EVENTS_TOPIC", "test.payment.events")
os.environ.setdefault("DEAD_LETTER_TOPIC", "test.payment.events.DLT")
os.environ.setdefault("POINTS_GROUP_ID", "test-mockpay-points")
os.environ.setdefault("METRICS_REFRESH_SECONDS", "1")
os.environ.setdefault("LOG_FORMAT", "json")
