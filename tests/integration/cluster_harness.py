"""Private clusters for high-availability tests: a 3-node Kafka and Redis lock nodes of the
test's own, on free ports, started and stopped by scripts/infra.sh, killed by pid."""

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from testkit.processes import REPO


def free_port_run(length: int, attempts: int = 50) -> int:
    """A port p such that p .. p+length-1 are all free (the scripts number nodes from a base)."""
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + length < 65_000 and all(_free(base + n) for n in range(length)):
            return base
    raise RuntimeError(f"no run of {length} free ports found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class _Nodes:
    """Servers that scripts/infra.sh runs under a private state directory."""

    def __init__(self, state_dir: Path, env: dict[str, str]) -> None:
        self.state_dir = state_dir
        self.env = {**os.environ, "MOCKPAY_STATE_DIR": str(state_dir), **env}

    def infra(self, *command: str) -> None:
        done = subprocess.run(
            ["bash", "scripts/infra.sh", *command], cwd=REPO, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"infra.sh {' '.join(command)}: {done.stderr[-2000:]}")

    @staticmethod
    def _kill(pid_file: Path) -> int:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        return pid


class KafkaCluster(_Nodes):
    """Three KRaft nodes, each broker and controller, like `KAFKA_BROKERS=3 make infra-up`."""

    size = 3

    def __init__(self, state_dir: Path) -> None:
        super().__init__(
            state_dir,
            {
                "KAFKA_BROKERS": str(self.size),
                "KAFKA_HEAP": "256m",
                "KAFKA_STOP_SECONDS": "10",
                # Three JVMs on a shared 2-core machine may take a while to form a quorum.
                "INFRA_WAIT_SECONDS": "180",
            },
        )
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.base = free_port_run(2 * self.size)
        self.env.update(KAFKA_PORT=str(self.base), KAFKA_CONTROLLER_PORT=str(self.base + 1))
        self.bootstrap = ",".join(f"127.0.0.1:{self.port(n)}" for n in self.nodes)

    @property
    def nodes(self) -> range:
        return range(1, self.size + 1)

    def port(self, node: int) -> int:
        return self.base + 2 * (node - 1)

    def start(self) -> None:
        """Start the cluster; once more on other ports if another process took one of them
        between choosing and binding (other suites pick free ports at the same time)."""
        try:
            self.infra("kafka-up")
        except RuntimeError:
            self.stop()
            shutil.rmtree(self.state_dir / "kafka-cluster", ignore_errors=True)
            self._choose_ports()
            self.infra("kafka-up")

    def stop(self) -> None:
        self.infra("kafka-down")

    def kill(self, node: int) -> int:
        """kill -9 one node; its pid."""
        return self._kill(self.state_dir / "kafka-cluster" / f"node-{node}" / "kafka.pid")

    def restart(self, node: int) -> None:
        self.infra("kafka-node-up", str(node))


class LockNodes(_Nodes):
    """Independent Redis servers for the quorum lock, like `LOCK_REDIS_NODES=3 make infra-up`."""

    def __init__(self, state_dir: Path, size: int = 3) -> None:
        self.size = size
        self.base = free_port_run(size)
        super().__init__(
            state_dir,
            {"LOCK_REDIS_NODES": str(size), "LOCK_REDIS_BASE_PORT": str(self.base)},
        )
        self.urls = [f"redis://127.0.0.1:{self.base + n}/0" for n in range(size)]

    def start(self) -> None:
        self.infra("lock-nodes-up")

    def stop(self) -> None:
        self.infra("lock-nodes-down")

    def kill(self, node: int) -> int:
        """kill -9 lock node `node` (1-based); its pid."""
        return self._kill(self.state_dir / "redis-lock" / f"node-{node}" / "redis.pid")

    def restart(self, node: int) -> None:
        self.infra("lock-node-up", str(node))

    def signal(self, node: int, sig: signal.Signals) -> None:
        """SIGSTOP / SIGCONT lock node `node`: a node that stalls, then answers late."""
        pid_file = self.state_dir / "redis-lock" / f"node-{node}" / "redis.pid"
        os.kill(int(pid_file.read_text()), sig)

    def wipe(self, node: int) -> None:
        """Delete a stopped node's data, so it comes back empty."""
        data = self.state_dir / "redis-lock" / f"node-{node}"
        shutil.rmtree(data / "appendonlydir", ignore_errors=True)
        (data / "dump.rdb").unlink(missing_ok=True)
