"""The points service's metrics: events by outcome, read from the processor's own counts,
the size of the transactions that apply them, and consumer lag plus dead-letter depth,
refreshed from Kafka every few seconds."""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from services.points.processor import EventProcessor

# The processor's count names, under the contract's outcome names.
OUTCOMES = {
    "applied": "applied",
    "duplicates": "duplicate",
    "retries": "retried",
    "dead_lettered": "dead_lettered",
    "ignored_unknown_type": "ignored",
}


class PointsEventsCollector(Collector):
    def __init__(self, processor: EventProcessor) -> None:
        self.processor = processor

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "mockpay_points_events", "Payment events handled, by outcome", labels=("outcome",)
        )
        for count, outcome in OUTCOMES.items():
            events.add_metric((outcome,), self.processor.counts[count])
        yield events


def register_processor(processor: EventProcessor, registry: CollectorRegistry) -> None:
    registry.register(PointsEventsCollector(processor))


BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class PointsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_size = Histogram(
            "mockpay_points_batch_size",
            "Payment events applied in one transaction (group commit)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
