"""MariaDB and Redis servers of a test's own, on free ports, that the test kills and restarts.

The shared servers are never touched: each private server has its own state directory and
port, is started by scripts/infra.sh like `make infra-up` starts the real ones, and is
stopped by the pid in its own pid file.
"""

import os
import signal
import subprocess
from pathlib import Path

from testkit.processes import REPO
from testkit.servers import free_port
from testkit.waiting import eventually_blocking


class PrivateServer:
    name = ""
    pid_file = ""

    def __init__(self, state_dir: Path, **settings: str) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.env = {**os.environ, "MOCKPAY_STATE_DIR": str(state_dir), **settings}

    def _infra(self, command: str) -> None:
        subprocess.run(
            ["bash", "scripts/infra.sh", command], cwd=REPO, env=self.env, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=180,
        )  # fmt: skip

    def start(self) -> None:
        self._infra(f"{self.name}-up")

    def stop(self) -> None:
        self._infra(f"{self.name}-down")

    def pid(self) -> int:
        return int((self.state_dir / self.pid_file).read_text().strip())

    def kill(self) -> None:
        """kill -9 by pid, and wait until the process is gone (a crash, not a shutdown)."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purpose
                return stat.read().split(") ")[1].startswith("Z")

        eventually_blocking(gone, 30, message=f"{self.name} pid {pid} still alive")


class PrivateMariaDB(PrivateServer):
    name = "mariadb"
    pid_file = "mariadb/mysqld.pid"

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        # The databases the tests will use: .env.test may name others than the defaults.
        databases = {os.environ.get(name, default) for name, default in (
            ("PAYMENT_MYSQL_DATABASE", "mockpay_payment_test"),
            ("POINTS_MYSQL_DATABASE", "mockpay_points_test"),
        )}  # fmt: skip
        self.env.update(
            MYSQL_PORT=str(self.port),
            MARIADB_BUFFER_POOL="32M",
            MOCKPAY_DATABASES=" ".join(sorted(databases)),
        )

    def settings(self) -> dict[str, object]:
        return {"mysql_port": self.port}


class PrivateRedis(PrivateServer):
    name = "redis"
    pid_file = "redis/redis.pid"

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.env.update(REDIS_PORT=str(self.port))
        self.url = f"redis://127.0.0.1:{self.port}/0"
