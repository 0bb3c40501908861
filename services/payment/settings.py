"""Payment service settings; every number here can be set in the environment or .env."""

from typing import Literal

from pydantic import Field, SecretStr

from shared.auth import ApiKeySettings
from shared.settings import ServiceSettings


class PaymentSettings(ServiceSettings, ApiKeySettings):
    payment_host: str = "127.0.0.1"
    payment_port: int = 8000
    payment_mysql_database: str = "mockpay_payment"
    payment_lock_strategy: Literal["redis", "pessimistic"] = "redis"
    payment_max_body_bytes: int = 64 * 1024
    # POST /payments by a plain Starlette route (entrypoints/hot_path.py), not FastAPI's.
    payment_lean_route: bool = True

    lock_wait_seconds: float = 5.0
    lock_lease_seconds: float | None = None  # None: the watchdog renews until release
    lock_watchdog_seconds: float = 30.0
    lock_local_queue: bool = True
    # database: when the lock service cannot be reached, wallets are locked by their row
    # (SELECT ... FOR UPDATE) and the fallback is counted; none: such requests get 503.
    lock_fallback: Literal["database", "none"] = "database"
    # Wallets whose last balance this process keeps for its next hold of their lock
    # (adapters/balances.py); 0: read every balance from the database.
    wallet_cache_size: int = Field(50_000, ge=0)
    lock_conflict_retries: int = 3  # attempts of a payment whose wallet changed under it
    # LOCK_REDIS_NODES=3: locks on three independent Redis servers (a majority holds them),
    # LOCK_REDIS_BASE_PORT and the two ports above it; 1: locks on REDIS_URL as always.
    lock_redis_nodes: int = 1
    lock_redis_host: str = "127.0.0.1"
    lock_redis_base_port: int = 6380
    lock_node_timeout_seconds: float = 0.5  # one node's answer; far below the lease
    # A node's answer that comes after that is still awaited this long (its socket timeout),
    # so what a late node granted to an acquisition that failed is given back.
    lock_node_late_answer_seconds: float = 5.0
    lock_clock_drift_factor: float = 0.01  # of the lease, kept off its validity time
    # A waiter that has waited this long asks whether the holder's process still has its
    # session, and again as often while it waits; a holder without one is taken over.
    lock_takeover_check_seconds: float = 1.0
    # A hold's last release that missed a lock node (down, too slow) is run again on that
    # node this often until it answers or the hold's lease has run out (shared/lock/janitor.py).
    lock_release_retry_seconds: float = 1.0
    # A payment is answered without waiting for its lock's release, which runs on in the
    # background and goes to Redis with the payment's idempotency record (shared/lock/client.py).
    lock_release_behind: bool = True
    # Each payment process's session (shared/session.py): a key refreshed every third of
    # this; a process paused or cut off longer is taken over, a killed one at once.
    payment_instance_ttl_seconds: float = 2.0

    def lock_node_urls(self) -> list[str]:
        return [
            f"redis://{self.lock_redis_host}:{self.lock_redis_base_port + n}/0"
            for n in range(self.lock_redis_nodes)
        ]

    # Group commit per wallet: up to this many queued payments, refunds and credits of one
    # wallet in one lock hold and one transaction (1: each takes the lock by itself).
    payment_batch_max: int = 200
    payment_batch_linger_ms: float = 0.0  # how long a small batch waits for company

    bank_gateway_url: str = "http://127.0.0.1:8001"
    bank_gateway_token: SecretStr
    bank_gateway_timeout_seconds: float = 5.0  # above the gateway's own bank read timeout
    bank_gateway_max_connections: int = 100  # a call finding none free waits, up to the timeout
    # An idle connection to the gateway is dropped after this: less than uvicorn's 5 s
    # keep-alive, so the gateway never closes a connection this client is about to reuse.
    bank_gateway_keepalive_seconds: float = 4.0
    charge_reconcile_interval_seconds: float = 2.0
    charge_reconcile_min_age_seconds: float = 10.0
    charge_reconcile_give_up_seconds: float = 120.0
    charge_reconcile_batch: int = 100

    outbox_relay_enabled: bool = True
    outbox_relay_connections: int = 2  # its own pool: never queued behind payment traffic
    outbox_batch_size: int = 500
    outbox_linger_ms: float = 10.0  # a relay woken from idle waits this long for company
    outbox_interval_ms: float = 50.0  # under steady load, batches start at least this far apart
    outbox_poll_interval_seconds: float = 1.0
    outbox_retry_backoff_seconds: float = 1.0
    outbox_retention_hours: float = 24.0
    outbox_prune_interval_seconds: float = 60.0

    idempotency_ttl_seconds: int = 24 * 3600
    # A running request's record is a lease, renewed while it runs: a crashed process
    # frees its keys within one lease.
    idempotency_lease_seconds: float = 5.0
    idempotency_lease_renew_seconds: float = 1.5
    idempotency_lease_max_seconds: float = 30.0  # renewed no longer: the request is stuck
