"""One log format for every service: JSON lines (`LOG_FORMAT=json`, what `make up` uses) or
text. Both carry the trace id and the ids bound to the work in hand (shared.tracing), so one
`grep <trace_id>` follows a payment from its HTTP request to its points entry."""

import logging
from typing import Literal

import orjson

from shared.tracing import log_fields

LogFormat = Literal["json", "text"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **log_fields(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{key}={value}" for key, value in log_fields().items())
        text = super().format(record)
        return f"{text} [{fields}]" if fields else text


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    # Neither format shows the thread, the process or the caller's file and line: not
    # collecting them saves a third of a line's cost (logging HOWTO, "Optimization"), and a
    # payment and a points event each log a line.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # documented: skips findCaller
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
