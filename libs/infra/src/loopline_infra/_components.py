"""What every server `loopline infra` runs has in common; the servers themselves are in _kafka.py
(KRaft), _redis.py, _postgres.py and _prometheus.py."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from loopline_infra._packages import Requirement, Say
from loopline_infra._paths import Paths
from loopline_infra._process import InfraError, read_pid, stop_pid, tail

DEFAULT_PROMETHEUS_PORT = 19090


@dataclass(frozen=True)
class Ports:
    kafka: int
    """The (first) broker's port: what clients bootstrap from."""
    kafka_controller: int
    redis: int
    postgres: int
    prometheus: int = DEFAULT_PROMETHEUS_PORT
    more_kafka: tuple[tuple[int, int], ...] = ()
    """Broker and controller ports of the other nodes of a local cluster (node 2, 3, …)."""

    def kafka_nodes(self, brokers: int) -> list[tuple[int, int]]:
        """Broker and controller ports of each of `brokers` Kafka nodes."""
        nodes = [(self.kafka, self.kafka_controller), *self.more_kafka]
        if not 1 <= brokers <= len(nodes):
            raise InfraError(f"ports are known for 1 to {len(nodes)} Kafka brokers, not {brokers}")
        return nodes[:brokers]


class CredentialsRefusedError(InfraError):
    """A server that answers but refuses the credentials of this home: waiting will not help."""


class Component(ABC):
    """One server `infra up` starts and `infra down` stops, by the pid it recorded."""

    name: str
    requirements: tuple[Requirement, ...]

    def __init__(self, paths: Paths, ports: Ports):
        self.paths = paths
        self.ports = ports
        self.dir = paths.component(self.name)

    @property
    @abstractmethod
    def ports_used(self) -> tuple[int, ...]:
        """The TCP ports the server listens on."""

    def check_ports_free(self) -> None:
        """Fail clearly when another program already listens on one of our ports."""
        for port in self.ports_used:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise InfraError(
                        f"{self.name}: port {port} is already in use by a process this project "
                        f"did not start (see `ss -ltnp 'sport = :{port}'`). Stop it, or choose "
                        "other ports with LOOPLINE_INFRA_*_PORT and point LOOPLINE_* at them."
                    )

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """How a client reaches it (a bootstrap address, a URL or a DSN)."""

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The pid of the running server this project started, if any."""
        return read_pid(self.pid_file)

    def prepare(self, say: Say) -> None:  # noqa: B027 - optional hook
        """Download or initialise what the first start needs."""

    @abstractmethod
    def start(self) -> None:
        """Start the server in the background (it is known not to be running)."""

    @abstractmethod
    async def ready(self) -> None:
        """Return once the server answers a real request; raise while it does not."""

    def stop(self) -> bool:
        """Stop the server if this project started it; whether it was running."""
        pid = self.pid()
        if pid is None:
            return False
        stop_pid(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def wipe(self) -> None:
        """Delete the component's data."""
        shutil.rmtree(self.dir, ignore_errors=True)

    async def wait_ready(self, timeout: float) -> float:
        """Wait until `ready()` passes; seconds it took. Fails fast if the process died."""
        started = time.monotonic()
        last: Exception | None = None
        while time.monotonic() - started < timeout:
            if self.pid() is None:
                raise InfraError(f"{self.name} exited during start-up; its log:\n{tail(self.log)}")
            try:
                await asyncio.wait_for(self.ready(), timeout=5)
                return time.monotonic() - started
            except CredentialsRefusedError:
                raise
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.25)
        raise InfraError(
            f"{self.name} not ready after {timeout:.0f}s ({last!r}); its log:\n{tail(self.log)}"
        )
