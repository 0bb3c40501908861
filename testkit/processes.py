"""Service processes for end-to-end tests and benchmarks: started, awaited, stopped by pid."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from testkit.servers import free_port
from testkit.waiting import eventually_blocking

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / ".local" / "logs" / "tests"


@contextlib.contextmanager
def service_process(
    module: str,
    env: dict[str, str],
    health_url: str,
    timeout: float = 60,
    python_args: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen]:
    """Run `python [python_args] -m module` with `env` added; yield once `health_url` answers
    200. `python_args` such as `-m cProfile -o FILE` profile the service."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{module.replace('.', '_')}-{os.getpid()}-{time.time_ns()}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, *python_args, "-m", module],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(health_url, process, timeout, log_path)
        yield process
    finally:
        stop(process)


def wait_healthy(url: str, process: subprocess.Popen, timeout: float, log_path: Path) -> None:
    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=1).status_code == 200
        return False

    message = f"{url} not healthy after {timeout}s; see {log_path}"
    eventually_blocking(healthy, timeout, interval=0.1, message=message)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ports(*names: str) -> dict[str, int]:
    return {name: free_port() for name in names}
