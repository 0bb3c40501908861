"""Dead letters: the original record, same partition, with Spring-Kafka-style headers.

Header values follow Spring Kafka's DeadLetterPublishingRecoverer: topic, group, exception
class, message and stack trace as UTF-8; partition as a 4-byte and offset and timestamp as
8-byte big-endian integers; `attempts` (ours) as UTF-8 digits.
"""

import asyncio
import logging
import struct
import traceback
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

DLT_PREFIX = "kafka_dlt-"
MAX_TRACE_BYTES = 16 * 1024


@dataclass(frozen=True)
class ConsumedMessage:
    topic: str
    partition: int
    offset: int
    timestamp: int  # ms since the epoch
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter_headers(
    message: ConsumedMessage, group: str, exc: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    trace = "".join(traceback.format_exception(exc)).encode()[:MAX_TRACE_BYTES]
    original = [(k, v) for k, v in message.headers if not k.startswith(DLT_PREFIX)]
    return original + [
        ("kafka_dlt-original-topic", message.topic.encode()),
        ("kafka_dlt-original-partition", struct.pack(">i", message.partition)),
        ("kafka_dlt-original-offset", struct.pack(">q", message.offset)),
        ("kafka_dlt-original-timestamp", struct.pack(">q", message.timestamp)),
        ("kafka_dlt-original-consumer-group", group.encode()),
        ("kafka_dlt-exception-fqcn", f"{type(exc).__module__}.{type(exc).__qualname__}".encode()),
        ("kafka_dlt-exception-message", str(exc).encode()),
        ("kafka_dlt-exception-stacktrace", trace),
        ("attempts", str(attempts).encode()),
    ]


def read_headers(headers: list[tuple[str, bytes]]) -> dict[str, str | int]:
    """The dead-letter headers decoded for people (see the encoding above)."""
    decoded: dict[str, str | int] = {}
    for key, value in headers:
        if key == "kafka_dlt-original-partition":
            decoded[key] = struct.unpack(">i", value)[0]
        elif key in ("kafka_dlt-original-offset", "kafka_dlt-original-timestamp"):
            decoded[key] = struct.unpack(">q", value)[0]
        else:
            decoded[key] = value.decode(errors="replace")
    return decoded


class DeadLetters:
    """Writes dead letters, and does not return before Kafka has acknowledged one."""

    def __init__(
        self, producer: AIOKafkaProducer, topic: str, group: str, retry_backoff: float
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.group = group
        self.retry_backoff = retry_backoff
        self.written = 0

    async def publish(self, message: ConsumedMessage, exc: BaseException, attempts: int) -> None:
        headers = dead_letter_headers(message, self.group, exc, attempts)
        while True:
            try:
                await self.producer.send_and_wait(
                    self.topic,
                    message.value,
                    key=message.key,
                    partition=message.partition,
                    headers=headers,
                )
                break
            except KafkaError as failure:
                # The source offset must not be committed before this write: keep trying.
                log.error("dead letter for %s not written (%r); retrying", message.offset, failure)
                await asyncio.sleep(self.retry_backoff)
        self.written += 1
        log.warning(
            "dead-lettered %s[%d]@%d after %d attempt(s): %s",
            message.topic, message.partition, message.offset, attempts, exc,
        )  # fmt: skip
