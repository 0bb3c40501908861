"""KAFKA_BROKERS sizes what clients are given: the bootstrap list and the topics' replicas."""

from typing import Any

import pytest

from shared.kafka import topic_specs
from shared.settings import ServiceSettings


@pytest.fixture(autouse=True)
def no_kafka_environment(monkeypatch):
    for name in ("KAFKA_HOST", "KAFKA_PORT", "KAFKA_BROKERS", "KAFKA_BOOTSTRAP_SERVERS",
                 "KAFKA_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def settings(**values: Any) -> ServiceSettings:
    return ServiceSettings(_env_file=None, mysql_password="unused", **values)


def test_one_broker_by_default_with_one_replica_as_before():
    one = settings()
    assert one.kafka_bootstrap_servers == "127.0.0.1:9092"
    (spec,) = topic_specs(one, "t")
    assert (spec.replication_factor, spec.min_insync_replicas) == (1, 1)


def test_three_brokers_are_all_bootstrap_servers_on_every_second_port():
    three = settings(kafka_brokers=3, kafka_port=9292)
    assert three.kafka_bootstrap_servers == "127.0.0.1:9292,127.0.0.1:9294,127.0.0.1:9296"


def test_three_brokers_give_topics_three_replicas_of_which_two_must_hold_a_write():
    (spec,) = topic_specs(settings(kafka_brokers=3), "payment.events")
    assert (spec.replication_factor, spec.min_insync_replicas) == (3, 2)
    topic = spec.new_topic()
    assert topic.topic_configs == {
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
    }


def test_explicit_settings_win_over_what_the_broker_count_suggests():
    chosen = settings(
        kafka_brokers=3, kafka_bootstrap_servers="k1:1", kafka_replication_factor=2,
        kafka_min_insync_replicas=1,
    )  # fmt: skip
    assert chosen.kafka_bootstrap_servers == "k1:1"
    (spec,) = topic_specs(chosen, "t")
    assert (spec.replication_factor, spec.min_insync_replicas) == (2, 1)
