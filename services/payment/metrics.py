"""The payment service's metrics (CONTRACT.md, Metrics): payments by outcome, the wallet
lock, the outbox, pending charges, and the lag of the consumers of its events.

Lock figures are taken by MeteredLocking around whichever locking strategy is configured;
the outbox and charge gauges are queried every few seconds; published events are read from
the relay's own count.
"""

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiomysql
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from services.payment.adapters.balances import BalanceCache
from services.payment.relay import OutboxRelay
from services.payment.service_layer.locking import Held, Locking
from shared.clock import utcnow
from shared.lock import LockLostError, LockTimeout

PAYMENT_OUTCOMES = (
    "completed",
    "insufficient_balance",
    "replayed",
    "in_progress",
    "key_reused",
    "unavailable",
    "cancelled",
)
# The answer a payment request got, as an outcome; other answers (404, ...) are not counted.
OUTCOME_BY_STATUS = {
    201: "completed",
    402: "insufficient_balance",
    409: "in_progress",
    422: "key_reused",
    503: "unavailable",
}
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
LOCK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PaymentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.payments = Counter(
            "mockpay_payments", "Payment requests by outcome", ("outcome",), registry=registry
        )
        # Every outcome shown from the start (at 0), and looked up without labels().
        self._payments_by_outcome = {o: self.payments.labels(o) for o in PAYMENT_OUTCOMES}
        self.amount = Counter(
            "mockpay_payments_amount",
            "Won paid by completed payments (not replays)",
            registry=registry,
        )
        self.lock_wait = Histogram(
            "mockpay_lock_wait_seconds",
            "Time to acquire the wallet lock",
            ("strategy",),
            buckets=LOCK_BUCKETS,
            registry=registry,
        )
        self.lock_held = Histogram(
            "mockpay_lock_held_seconds",
            "Time the wallet lock was held",
            ("strategy",),
            buckets=LOCK_BUCKETS,
            registry=registry,
        )
        self.lock_timeouts = Counter(
            "mockpay_lock_timeouts", "Lock waits that ran out", registry=registry
        )
        self.lock_lease_lost = Counter(
            "mockpay_lock_lease_lost", "Leases lost while held", registry=registry
        )
        self.lock_fallbacks = Counter(
            "mockpay_lock_fallbacks",
            "Locks served by the database because Redis could not",
            registry=registry,
        )
        self.lock_takeovers = Counter(
            "mockpay_lock_takeovers",
            "Wallet locks taken over from a process whose session was over, or from a hold "
            "its own process had forgotten",
            registry=registry,
        )
        self.lock_subscription_timeouts = Counter(
            "mockpay_lock_subscription_timeouts",
            "Lock waiters whose wake-up subscription was not confirmed within their pause "
            "(a lock node down or just back): they polled the lock instead",
            registry=registry,
        )
        self.lock_releases_missed = Counter(
            "mockpay_lock_releases_missed",
            "Last releases of a wallet lock hold that a lock node missed, run again on it "
            "until it answered or the hold's lease ran out",
            registry=registry,
        )
        self.idempotency_takeovers = Counter(
            "mockpay_idempotency_takeovers",
            "Running requests of a process whose session was over, run again by a repeat",
            registry=registry,
        )
        self.session_refresh_failures = Counter(
            "mockpay_session_refresh_failures",
            "Refreshes of this process's session key that failed",
            registry=registry,
        )
        self.batch_size = Histogram(
            "mockpay_payment_batch_size",
            "Money movements of one wallet applied in one transaction",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.outbox_unpublished = Gauge(
            "mockpay_outbox_unpublished", "Outbox rows not yet published", registry=registry
        )
        self.outbox_oldest = Gauge(
            "mockpay_outbox_oldest_unpublished_seconds",
            "Age of the oldest unpublished outbox row (0 when none)",
            registry=registry,
        )
        self.charges_pending = Gauge(
            "mockpay_charges_pending", "Charges whose bank outcome is unknown", registry=registry
        )

    def payment_answered(self, status: int, replayed: bool, amount: int = 0) -> None:
        outcome = "replayed" if replayed else OUTCOME_BY_STATUS.get(status)
        if outcome is not None:
            self._payments_by_outcome[outcome].inc()
        if outcome == "completed":
            self.amount.inc(amount)

    def metered(self, locking: Locking, strategy: str) -> "MeteredLocking":
        return MeteredLocking(locking, self, strategy)

    def watch_relay(self, relay: OutboxRelay) -> None:
        self.registry.register(RelayCollector(relay))

    def watch_balances(self, balances: BalanceCache) -> None:
        self.registry.register(BalanceCacheCollector(balances))

    async def refresh_backlog(self, pool: aiomysql.Pool) -> None:
        """Outbox backlog and pending charges, two indexed queries."""
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE published_at IS NULL"
            )
            unpublished, oldest = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM charges WHERE status = 'PENDING'")
            (pending,) = await cur.fetchone()
            await conn.rollback()
        self.outbox_unpublished.set(unpublished)
        self.outbox_oldest.set((utcnow() - oldest).total_seconds() if oldest else 0.0)
        self.charges_pending.set(pending)


@dataclass
class MeteredLocking:
    """A locking strategy that reports wait, hold, timeouts and lost leases."""

    inner: Locking
    metrics: PaymentMetrics
    strategy: str

    def __post_init__(self) -> None:
        # labels() hashes and validates on every call; the strategy never changes.
        self._wait = self.metrics.lock_wait.labels(self.strategy)
        self._held = self.metrics.lock_held.labels(self.strategy)

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Held]:
        started = time.perf_counter()
        try:
            async with self.inner.hold(name) as held:
                acquired = time.perf_counter()
                self._wait.observe(acquired - started)
                try:
                    yield held
                except LockLostError:
                    self.metrics.lock_lease_lost.inc()
                    raise
                finally:
                    self._held.observe(time.perf_counter() - acquired)
        except LockTimeout:
            self.metrics.lock_timeouts.inc()
            raise


class RelayCollector(Collector):
    def __init__(self, relay: OutboxRelay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "mockpay_outbox_published", "Events the relay published", value=self.relay.published
        )


class BalanceCacheCollector(Collector):
    def __init__(self, balances: BalanceCache) -> None:
        self.balances = balances

    def collect(self) -> Iterator[Metric]:
        reads = CounterMetricFamily(
            "mockpay_wallet_reads",
            "Wallet balances a locked use case needed, by where they came from: this "
            "process's last hold of the lock (cache) or the database",
            labels=["source"],
        )
        reads.add_metric(["cache"], self.balances.hits)
        reads.add_metric(["database"], self.balances.misses)
        yield reads
