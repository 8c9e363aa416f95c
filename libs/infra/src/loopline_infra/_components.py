"""The servers `loopline infra` runs: Redis and PostgreSQL here; Kafka (KRaft) in _kafka.py,
Prometheus in _prometheus.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import socket
import stat
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from loopline_infra._packages import POSTGRES, REDIS, Requirement, Say, postgres_bin_dir
from loopline_infra._paths import Paths
from loopline_infra._process import InfraError, read_pid, run, spawn, stop_pid, tail

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
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.25)
        raise InfraError(
            f"{self.name} not ready after {timeout:.0f}s ({last!r}); its log:\n{tail(self.log)}"
        )


class Redis(Component):
    """redis-server on the project's own port."""

    name = "redis"
    requirements = (REDIS,)

    @property
    def ports_used(self) -> tuple[int, ...]:
        return (self.ports.redis,)

    @property
    def endpoint(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        spawn(
            [
                "redis-server",
                "--port",
                str(self.ports.redis),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--save",
                "60 1000",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            log=self.log,
            pid_file=self.pid_file,
        )

    async def ready(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.endpoint)
        try:
            if not await client.ping():
                raise InfraError("redis did not answer PING")
        finally:
            await client.aclose()


def _world_traversable(path: Path) -> bool:
    """Whether every existing folder from / down to `path` lets any user pass through."""
    for folder in (path, *path.parents):
        try:
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
        except FileNotFoundError:
            continue
    return True


class Postgres(Component):
    """PostgreSQL in a data folder of the project's own (initdb + pg_ctl)."""

    name = "postgres"
    requirements = (POSTGRES,)
    role = "loopline"
    database = "loopline"

    def __init__(self, paths: Paths, ports: Ports):
        super().__init__(paths, ports)
        if os.geteuid() == 0 and not _world_traversable(self.dir.parent):
            # As root, the server runs as `postgres`, which cannot reach a data folder under a
            # private directory (a 0700 temp dir, /root): keep it in a folder of this project's
            # own under /var/lib instead, named after the project's home.
            digest = hashlib.sha1(str(self.dir).encode()).hexdigest()[:12]
            self.dir = Path("/var/lib/loopline") / f"postgres-{digest}"

    @property
    def ports_used(self) -> tuple[int, ...]:
        return (self.ports.postgres,)

    @property
    def endpoint(self) -> str:
        return f"postgresql://{self.role}@127.0.0.1:{self.ports.postgres}/{self.database}"

    @property
    def _data(self) -> Path:
        return self.dir / "data"

    @property
    def pid_file(self) -> Path:
        return self._data / "postmaster.pid"

    def _user(self) -> str | None:
        """PostgreSQL refuses to run as root: run it as the `postgres` account then."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            run(["useradd", "--system", "--no-create-home", "postgres"], what="useradd postgres")
        return "postgres"

    def _bin(self, program: str) -> str:
        found = postgres_bin_dir()
        if found is None:
            raise InfraError("PostgreSQL programs not found")
        return str(found / program)

    def prepare(self, say: Say) -> None:
        user = self._user()
        self.dir.mkdir(parents=True, exist_ok=True)
        if user:
            self.dir.chmod(0o755)
            shutil.chown(self.dir, user)
        if (self._data / "PG_VERSION").exists():
            return
        say("postgres: initialising a data folder")
        run(
            [
                self._bin("initdb"),
                "-D",
                str(self._data),
                "-U",
                self.role,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
            what="initdb",
            user=user,
        )

    def start(self) -> None:
        options = (
            f"-p {self.ports.postgres} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.dir} -c max_connections=200 "
            "-c shared_buffers=256MB -c fsync=on"
        )
        run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self._data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            what="pg_ctl start",
            user=self._user(),
        )

    def stop(self) -> bool:
        if self.pid() is None:
            return False
        run(
            [self._bin("pg_ctl"), "-D", str(self._data), "-m", "fast", "-w", "-t", "60", "stop"],
            what="pg_ctl stop",
            user=self._user(),
        )
        return True

    async def ready(self) -> None:
        import asyncpg

        admin_dsn = self.endpoint.rsplit("/", 1)[0] + "/postgres"
        conn = await asyncpg.connect(admin_dsn, timeout=3)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.endpoint, timeout=3)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
