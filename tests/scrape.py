"""Reading Prometheus text format in tests: the samples of one scrape, by name."""

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse(text: str) -> list[Sample]:
    return [
        Sample(sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def named(samples: list[Sample], name: str) -> list[Sample]:
    return [s for s in samples if s.name == name]


def value(samples: list[Sample], metric: str, **labels: str) -> float:
    """The value of the one sample `metric` whose labels include `labels`."""
    matching = [s for s in named(samples, metric) if labels.items() <= s.labels.items()]
    assert len(matching) == 1, f"{metric}{labels}: {len(matching)} samples"
    return matching[0].value
