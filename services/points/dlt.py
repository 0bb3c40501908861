"""Operators' dead-letter tools.

    python -m services.points.dlt list [--json]
    python -m services.points.dlt replay (--all | --offset N [--partition P] | --event-id ID)

Replay re-publishes the original key, value and headers to the original topic (from the
`kafka_dlt-original-topic` header). It is safe to repeat: the points service applies each
event_id once.
"""

import argparse
import asyncio
import json
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from services.points.dead_letters import DLT_PREFIX, read_headers
from shared.kafka import idempotent_producer
from shared.settings import ServiceSettings


async def partitions_of(bootstrap_servers: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        [description] = await admin.describe_topics([topic])
        return [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
    finally:
        await admin.close()


async def read_all(bootstrap_servers: str, topic: str) -> list[ConsumerRecord]:
    """Every record of `topic`, from the beginning to the end it has now."""
    partitions = await partitions_of(bootstrap_servers, topic)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=1000)
            records.extend(r for batch in batches.values() for r in batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


def event_id(record: ConsumerRecord) -> str | None:
    try:
        value: Any = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    return value.get("event_id") if isinstance(value, dict) else None


def describe(record: ConsumerRecord) -> dict[str, Any]:
    headers = read_headers(list(record.headers or []))
    return {
        "partition": record.partition,
        "offset": record.offset,
        "key": (record.key or b"").decode(errors="replace"),
        "event_id": event_id(record),
        "original": f"{headers.get('kafka_dlt-original-topic')}"
        f"[{headers.get('kafka_dlt-original-partition')}]"
        f"@{headers.get('kafka_dlt-original-offset')}",
        "exception": headers.get("kafka_dlt-exception-fqcn"),
        "message": headers.get("kafka_dlt-exception-message"),
        "attempts": headers.get("attempts"),
    }


def select(
    records: Iterable[ConsumerRecord],
    offset: int | None = None,
    partition: int | None = None,
    wanted_event_id: str | None = None,
) -> list[ConsumerRecord]:
    return [
        r
        for r in records
        if (offset is None or r.offset == offset)
        and (partition is None or r.partition == partition)
        and (wanted_event_id is None or event_id(r) == wanted_event_id)
    ]


async def replay(producer: AIOKafkaProducer, records: Iterable[ConsumerRecord]) -> int:
    count = 0
    for record in records:
        headers = list(record.headers or [])
        original_topic = read_headers(headers).get("kafka_dlt-original-topic")
        kept = [(k, v) for k, v in headers if not k.startswith(DLT_PREFIX) and k != "attempts"]
        await producer.send_and_wait(
            str(original_topic), record.value, key=record.key, headers=kept
        )
        count += 1
    return count


async def main(args: argparse.Namespace) -> int:
    settings = ServiceSettings()
    records = await read_all(settings.kafka_bootstrap_servers, settings.dead_letter_topic)
    if args.command == "list":
        rows = [describe(r) for r in records]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(
                    f"[{row['partition']}]@{row['offset']} key={row['key']} "
                    f"event_id={row['event_id']} from={row['original']} "
                    f"attempts={row['attempts']} {row['exception']}: {row['message']}"
                )
            print(f"{len(rows)} dead letter(s) in {settings.dead_letter_topic}")
        return 0
    chosen = records if args.all else select(records, args.offset, args.partition, args.event_id)
    if not chosen:
        print("nothing matched; nothing replayed")
        return 1
    producer = idempotent_producer(settings.kafka_bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        replayed = await replay(producer, chosen)
    finally:
        await producer.stop()
    print(f"replayed {replayed} dead letter(s)")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.points.dlt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show the dead letters")
    listing.add_argument("--json", action="store_true")
    again = commands.add_parser("replay", help="re-publish dead letters to their original topic")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true")
    which.add_argument("--offset", type=int)
    which.add_argument("--event-id")
    again.add_argument("--partition", type=int, help="with --offset, the DLT partition")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
