"""The servers `loopline infra` runs: Kafka (KRaft), Redis and PostgreSQL here; Prometheus in
_prometheus.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import pwd
import shutil
import socket
import stat
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from string import Template

from loopline_infra._packages import (
    JAVA,
    KCAT,
    MAVEN,
    POSTGRES,
    REDIS,
    Requirement,
    Say,
    postgres_bin_dir,
)
from loopline_infra._paths import KAFKA_VERSION, Paths
from loopline_infra._process import InfraError, read_pid, run, spawn, stop_pid, tail

DEFAULT_PROMETHEUS_PORT = 19090


@dataclass(frozen=True)
class Ports:
    kafka: int
    kafka_controller: int
    redis: int
    postgres: int
    prometheus: int = DEFAULT_PROMETHEUS_PORT


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


class Kafka(Component):
    """Apache Kafka in KRaft mode, one node, assembled from Maven Central."""

    name = "kafka"
    requirements = (JAVA, MAVEN, KCAT)

    @property
    def ports_used(self) -> tuple[int, ...]:
        return (self.ports.kafka, self.ports.kafka_controller)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def log(self) -> Path:
        return self.dir / "logs" / "server.log"

    @property
    def _properties(self) -> Path:
        return self.dir / "server.properties"

    @property
    def _data(self) -> Path:
        return self.dir / "data"

    def prepare(self, say: Say) -> None:
        libs = self.paths.kafka_libs
        marker = libs / ".complete"
        if not marker.exists():
            say(f"kafka: fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {libs}")
            pom = self.paths.project / "infra" / "kafka" / "pom.xml"
            shutil.rmtree(libs, ignore_errors=True)
            run(
                ["mvn", "-q", "-B", "-f", str(pom), "package", f"-Dlibs.dir={libs}"],
                what="mvn (Kafka jars)",
            )
            marker.write_text(KAFKA_VERSION + "\n")
        self.dir.mkdir(parents=True, exist_ok=True)
        template = Template(
            (self.paths.project / "infra" / "kafka" / "server.properties").read_text()
        )
        self._properties.write_text(
            template.substitute(
                broker_port=self.ports.kafka,
                controller_port=self.ports.kafka_controller,
                data_dir=self._data,
            )
        )
        if not (self._data / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            say(f"kafka: formatting storage (cluster {cluster_id})")
            run(
                [
                    *self._java(),
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "-t",
                    cluster_id,
                    "-c",
                    str(self._properties),
                ],
                what="kafka storage format",
            )

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            f"-Dlog4j2.configurationFile={self.paths.project / 'infra' / 'kafka' / 'log4j2.yaml'}",
            "-cp",
            f"{self.paths.kafka_libs}/*",
        ]

    def start(self) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        spawn(
            [*self._java(), "kafka.Kafka", str(self._properties)],
            log=self.dir / "logs" / "console.log",
            pid_file=self.pid_file,
        )

    async def ready(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        # While the broker boots, aiokafka logs every refused connection; the caller retries.
        quiet = logging.getLogger("aiokafka")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.endpoint, request_timeout_ms=3000)
        try:
            await admin.start()
            brokers = (await admin.describe_cluster())["brokers"]
            if not brokers:
                raise InfraError("no broker in the metadata")
        finally:
            await admin.close()
            quiet.setLevel(level)


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
