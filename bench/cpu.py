"""CPU used per process over a stretch of a benchmark, read from /proc (Linux).

Where a machine runs the services, the servers and the load generator together, the
question after "how fast" is "what was the machine busy with": this answers it in percent
of one core per process, plus the whole machine's busy share.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import REPO_ROOT


def infra_pids() -> dict[str, int]:
    """The servers `make infra-up` started (from their pid files), where there are any."""
    state = Path(os.environ.get("MOCKPAY_STATE_DIR", REPO_ROOT / ".local"))
    files = {
        "mariadb": state / "mariadb" / "mysqld.pid",
        "redis": state / "redis" / "redis.pid",
        "kafka": state / "kafka" / "kafka.pid",
    }
    pids = {}
    for name, path in files.items():
        if path.is_file() and path.read_text().strip().isdigit():
            pids[name] = int(path.read_text().strip())
    return pids


def process_ticks(pid: int) -> int | None:
    """User plus system clock ticks of a process (its threads included), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSample:
    pids: dict[str, int]
    started: dict[str, int | None] = field(default_factory=dict)
    machine: tuple[int, int] = (0, 0)

    @classmethod
    def begin(cls, pids: dict[str, int]) -> "CpuSample":
        sample = cls(pids)
        sample.started = {name: process_ticks(pid) for name, pid in pids.items()}
        sample.machine = machine_ticks()
        return sample

    def end(self) -> dict[str, float]:
        """Percent of one core per process over the stretch, and 'machine busy %'."""
        busy, total = machine_ticks()
        elapsed_ticks = (total - self.machine[1]) / (os.cpu_count() or 1)
        shares: dict[str, float] = {}
        for name, pid in self.pids.items():
            before, after = self.started.get(name), process_ticks(pid)
            if before is not None and after is not None and elapsed_ticks:
                shares[name] = round(100 * (after - before) / elapsed_ticks, 1)
        if total > self.machine[1]:
            shares["machine busy %"] = round(
                100 * (busy - self.machine[0]) / (total - self.machine[1]), 1
            )
        return shares
