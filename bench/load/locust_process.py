"""Locust headless in a process of its own (gevent patches everything it imports, so the
driver stays a plain asyncio program), its HTML report and CSVs in the run's folder."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.load.settings import LoadSettings
from bench.load.thresholds import StepStats, read_stats

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
REPO = LOCUSTFILE.parents[2]


@dataclass(frozen=True)
class LocustRun:
    users: int
    spawn_rate: float
    rate: float
    seconds: int
    tag: str = ""  # file name suffix, so the steps of load-threshold share one folder

    @classmethod
    def from_settings(cls, settings: LoadSettings) -> "LocustRun":
        return cls(
            settings.load_users, settings.load_spawn_rate, settings.load_rate, settings.load_seconds
        )

    def command(self, host: str, out: Path) -> list[str]:
        return [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", host, "-u", str(self.users), "-r", str(self.spawn_rate),
            "-t", f"{self.seconds}s", "--stop-timeout", "10", "--only-summary",
            "--html", str(out / f"report{self.tag}.html"), "--csv", str(out / f"load{self.tag}"),
            "--json-file", str(out / f"stats{self.tag}"),
            "--exit-code-on-error", "0",  # errors are judged against LOAD_MAX_ERROR_RATE
        ]  # fmt: skip

    def env(self, wallets: Path) -> dict[str, str]:
        """The locustfile reads LoadSettings too: give it this run's numbers and wallets."""
        return {
            **os.environ,
            "LOAD_WALLETS_FILE": str(wallets),
            "LOAD_USERS": str(self.users),
            "LOAD_RATE": str(self.rate),
            "LOAD_SECONDS": str(self.seconds),
        }


def start(run: LocustRun, settings: LoadSettings, wallets: Path, out: Path) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    log = (out / f"locust{run.tag}.log").open("wb")
    with log:
        return subprocess.Popen(
            run.command(settings.load_host, out),
            cwd=REPO,
            env=run.env(wallets),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def finish(process: subprocess.Popen, run: LocustRun, out: Path) -> StepStats:
    """Wait for the run; its aggregated statistics. Raises when Locust itself failed."""
    returncode = process.wait(timeout=run.seconds + 300)
    stats_json = out / f"stats{run.tag}.json"
    if returncode != 0 or not stats_json.exists():
        log = out / f"locust{run.tag}.log"
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"locust exited {returncode}; {log} ends:\n{tail}")
    return read_stats(stats_json)
