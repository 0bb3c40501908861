"""Which local processes serve the system under load, found by the ports they listen on,
so that load-threshold can say what each one cost at each step."""

from typing import Any
from urllib.parse import urlsplit

import psutil
from pydantic_settings import BaseSettings

from bench.load.settings import LoadSettings
from services.bank_gateway.settings import FakeBankSettings, GatewaySettings
from shared.settings import BaseServiceSettings, ServiceSettings

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _default(settings: type[BaseSettings], name: str) -> Any:
    return settings.model_fields[name].default


class SystemPorts(BaseServiceSettings):
    """The services' own settings names, read from the environment and .env as they do."""

    bank_gateway_port: int = _default(GatewaySettings, "bank_gateway_port")
    fake_bank_port: int = _default(FakeBankSettings, "fake_bank_port")
    mysql_port: int = _default(ServiceSettings, "mysql_port")
    redis_url: str = _default(ServiceSettings, "redis_url")
    kafka_bootstrap_servers: str = _default(ServiceSettings, "kafka_bootstrap_servers")


def _local_port(url: str) -> int | None:
    parts = urlsplit(url if "//" in url else f"//{url}")
    return parts.port if parts.hostname in LOOPBACK else None


def wanted_ports(load: LoadSettings, ports: SystemPorts) -> dict[str, int]:
    """Name -> port of every process worth watching; none when the target is not local."""
    if not load.is_local():
        return {}
    found = {
        "payment": _local_port(load.load_host),
        "points": _local_port(load.load_points_host) if load.load_points_host else None,
        "bank-gateway": ports.bank_gateway_port,
        "fake-bank": ports.fake_bank_port,
        "mariadb": ports.mysql_port,
        "redis": _local_port(ports.redis_url),
        "kafka": _local_port(ports.kafka_bootstrap_servers.split(",")[0]),
    }
    return {name: port for name, port in found.items() if port}


def listening_pids(ports: dict[str, int]) -> dict[str, int]:
    """Name -> pid of the process listening on each port (those found)."""
    by_port = {
        conn.laddr.port: conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.pid
    }
    return {name: by_port[port] for name, port in ports.items() if port in by_port}
