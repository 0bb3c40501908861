"""What an audit finds: discrepancies (money or events wrong) and items still in flight.

`Findings` is the sink every check writes to. It counts everything but lists at most
`max_listed` items of each sort, so a badly broken database of 10 million rows cannot make
the audit itself run out of memory.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Id = str | int


@dataclass(frozen=True)
class Finding:
    check: str  # e.g. WALLET_BALANCE_MISMATCH
    detail: str
    ids: dict[str, Id]

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ids": self.ids, "detail": self.detail}

    def line(self) -> str:
        named = " ".join(f"{key}={value}" for key, value in self.ids.items())
        return f"{self.check} {named}: {self.detail}"


@dataclass
class Findings:
    max_listed: int
    discrepancies: list[Finding] = field(default_factory=list)
    in_flight: list[Finding] = field(default_factory=list)
    discrepancy_counts: Counter[str] = field(default_factory=Counter)
    in_flight_counts: Counter[str] = field(default_factory=Counter)

    def problem(self, check: str, detail: str, **ids: Id) -> None:
        self.discrepancy_counts[check] += 1
        if len(self.discrepancies) < self.max_listed:
            self.discrepancies.append(Finding(check, detail, ids))

    def flying(self, check: str, detail: str, **ids: Id) -> None:
        self.in_flight_counts[check] += 1
        if len(self.in_flight) < self.max_listed:
            self.in_flight.append(Finding(check, detail, ids))
