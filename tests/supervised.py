"""The services as `make up` runs them: under supervisord, in a state directory of the test's."""

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from testkit.processes import REPO
from tests.integration.cluster_harness import free_port_run

SCRIPT_SECONDS = 180


@dataclass
class Supervised:
    env: dict[str, str]
    state: Path
    urls: dict[str, str] = field(default_factory=dict)

    def script(self, command: str) -> str:
        done = subprocess.run(
            ["bash", "scripts/services.sh", command], cwd=REPO, env=self.env,
            capture_output=True, text=True, timeout=SCRIPT_SECONDS,
        )  # fmt: skip
        assert done.returncode == 0, f"services.sh {command}: {done.stderr[-2000:]}"
        return done.stdout + done.stderr

    def pids(self) -> dict[str, int]:
        """Each RUNNING program's pid, from `services.sh status` (supervisorctl's table)."""
        table = self.script("status")
        return {
            name: int(pid) for name, pid in re.findall(r"^(\S+)\s+RUNNING\s+pid (\d+)", table, re.M)
        }

    def log(self, name: str) -> str:
        return (self.state / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]


def supervised_env(state: Path, services: str, **settings: str) -> dict[str, str]:
    """The environment of a test's own `services.sh`. Replicas and points workers (under
    PAYMENT_REPLICAS / POINTS_WORKERS > 1, as `make test-ha` sets) get free ports too."""
    free = {
        "PAYMENT_REPLICA_BASE_PORT": str(free_port_run(4)),
        "POINTS_WORKER_BASE_PORT": str(free_port_run(4)),
        "POINTS_DATA_DIR": str(state / "points"),
    }
    return {**os.environ, **free, "MOCKPAY_STATE_DIR": str(state), "MOCKPAY_SERVICES": services,
            **settings}  # fmt: skip
