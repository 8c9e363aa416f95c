"""`loopline infra up|down|status`: the one code path the Makefile, the CLI and the tests use."""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import redis.asyncio as aioredis
from loopline_runtime import (
    DEFAULT_KAFKA_CONTROLLER_PORT,
    DEFAULT_KAFKA_PORT,
    DEFAULT_POSTGRES_PORT,
    DEFAULT_REDIS_PORT,
    LOCAL_PRINCIPAL,
    ClusterEndpoints,
    Credentials,
    Endpoints,
    KafkaSettings,
    PostgresSettings,
    RedisSettings,
)
from pydantic import SecretStr

from loopline_infra._components import DEFAULT_PROMETHEUS_PORT, Component, Ports
from loopline_infra._credentials import CredentialStore, write_private
from loopline_infra._kafka import Kafka
from loopline_infra._packages import Say, ensure_programs
from loopline_infra._paths import Paths, default_paths
from loopline_infra._postgres import DATABASE, Postgres
from loopline_infra._postgres_roles import provision_roles
from loopline_infra._process import InfraError
from loopline_infra._prometheus import Prometheus
from loopline_infra._provision import (
    admin_settings,
    principal_settings,
    provision_namespace,
    provision_users,
)
from loopline_infra._quorum import describe_quorum
from loopline_infra._redis import Redis, acl_file

READY_TIMEOUT_S = 120.0
BROKER_CHOICES = (1, 3)
"""One node for development; three (every node a broker and a controller) to see what a
production cluster does when one of them fails."""
NODE_PORT_STEP = 2
"""Node n of a local cluster listens on the first node's broker and controller ports + 2(n-1)."""


def _port(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


def default_ports() -> Ports:
    """Ports of the project's own servers (LOOPLINE_INFRA_*_PORT), apart from the usual ones.

    The nodes of a local cluster follow the first: 19092/19093, 19094/19095, 19096/19097.
    """
    kafka = _port("LOOPLINE_INFRA_KAFKA_PORT", DEFAULT_KAFKA_PORT)
    controller = _port("LOOPLINE_INFRA_KAFKA_CONTROLLER_PORT", DEFAULT_KAFKA_CONTROLLER_PORT)
    return Ports(
        kafka=kafka,
        kafka_controller=controller,
        redis=_port("LOOPLINE_INFRA_REDIS_PORT", DEFAULT_REDIS_PORT),
        postgres=_port("LOOPLINE_INFRA_POSTGRES_PORT", DEFAULT_POSTGRES_PORT),
        prometheus=_port("LOOPLINE_INFRA_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT),
        more_kafka=tuple(
            (kafka + NODE_PORT_STEP * n, controller + NODE_PORT_STEP * n)
            for n in range(1, max(BROKER_CHOICES))
        ),
    )


def _layout_file(paths: Paths) -> Path:
    return paths.home / "kafka-brokers"


def recorded_brokers(paths: Paths) -> int:
    """How many Kafka brokers the last `infra up` in this home ran (1 if none did)."""
    try:
        return int(_layout_file(paths).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 1


@dataclass(frozen=True)
class ComponentStatus:
    """What `infra status` reports of one component."""

    name: str
    endpoint: str
    state: str  # "ready", "running" (not answering), "stopped"
    pid: int | None
    role: str = ""
    """For a node of a Kafka cluster: `active controller` or `controller`."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Infra:
    """The project's Kafka (one broker or a cluster), Redis, PostgreSQL and Prometheus, as one
    unit.

    `brokers` picks one Kafka node or a local cluster of three; unset, the layout the last
    `up` in this home ran. Every server authenticates its clients: `up` gives each principal
    its users (credentials.json of the home) and `namespace` its ACLs and topics (None: no
    namespace, for a private cluster whose users make their own).
    """

    def __init__(
        self,
        paths: Paths | None = None,
        ports: Ports | None = None,
        brokers: int | None = None,
        *,
        namespace: str | None = None,
    ):
        self.paths = paths or default_paths()
        self.ports = ports or default_ports()
        self.store = CredentialStore(self.paths)
        self.namespace = (
            os.environ.get("LOOPLINE_KAFKA_TOPIC_PREFIX", "") if namespace is None else namespace
        )
        self.provision_namespace = True
        self.brokers = brokers or recorded_brokers(self.paths)
        if self.brokers not in BROKER_CHOICES:
            raise InfraError(f"a local Kafka has 1 or 3 brokers, not {self.brokers}")
        self.components: tuple[Component, ...] = (
            Postgres(self.paths, self.ports),
            Redis(self.paths, self.ports),
            *self._kafka_nodes(self.brokers),
            Prometheus(self.paths, self.ports),
        )

    def _kafka_nodes(self, brokers: int) -> list[Kafka]:
        return [Kafka(self.paths, self.ports, n, brokers) for n in range(1, brokers + 1)]

    @property
    def kafka_nodes(self) -> list[Kafka]:
        """The Kafka node(s) of this layout, node 1 first."""
        return [c for c in self.components if isinstance(c, Kafka)]

    @property
    def bootstrap(self) -> str:
        """Every broker, as a client's bootstrap servers."""
        return self.kafka_nodes[0].bootstrap

    def env(self) -> dict[str, str]:
        """Where these servers are (no credentials: `credentials()` has them)."""
        env = {"LOOPLINE_KAFKA_BOOTSTRAP": self.bootstrap}
        names = {c.name: c for c in self.components}
        if "redis" in names:
            env["LOOPLINE_REDIS_URL"] = names["redis"].endpoint
        if "postgres" in names:
            env["LOOPLINE_POSTGRES_DSN"] = names["postgres"].endpoint
        return env

    def cluster_endpoints(self) -> ClusterEndpoints:
        """Where the servers of this home listen, as the credentials file records them."""
        return ClusterEndpoints(
            kafka_bootstrap=self.bootstrap,
            redis_port=self.ports.redis,
            postgres_port=self.ports.postgres,
            postgres_database=DATABASE,
        )

    def credentials(self) -> Credentials:
        """The credentials `up` made (ConfigurationError before the first `up`)."""
        return self.store.require()

    def endpoints(self, principal: str = LOCAL_PRINCIPAL, namespace: str = "") -> Endpoints:
        """The endpoints of these servers, logged in as `principal`, in `namespace`."""
        credentials = self.credentials()
        dsn, url = credentials.postgres_dsn(principal), credentials.redis_url(principal)
        return Endpoints(
            kafka=principal_settings(credentials, principal, self.bootstrap, namespace),
            redis=RedisSettings(url=SecretStr(url or self.env().get("LOOPLINE_REDIS_URL", ""))),
            postgres=PostgresSettings(dsn=SecretStr(dsn or "")),
        )

    def component(self, name: str) -> Component:
        """The component called `name` (kafka or kafka-1…3, redis, postgres, prometheus)."""
        for component in self.components:
            if component.name == name:
                return component
        known = ", ".join(c.name for c in self.components)
        raise InfraError(f"no component named {name!r} here (there are: {known})")

    def kafka_node(self, node_id: int) -> Kafka:
        """The Kafka node whose node.id is `node_id`."""
        return next(k for k in self.kafka_nodes if k.node_id == node_id)

    def check_layout(self) -> None:
        """Refuse to start a layout while the other one runs on the same ports."""
        recorded = recorded_brokers(self.paths)
        if recorded == self.brokers:
            return
        running = [k for k in self._kafka_nodes(recorded) if k.pid() is not None]
        if running:
            raise InfraError(
                f"a Kafka of {recorded} broker(s) runs from this home ({running[0].name}, pid "
                f"{running[0].pid()}); stop it with `loopline infra down` before starting "
                f"{self.brokers}"
            )

    async def up(self, say: Say = print) -> list[ComponentStatus]:
        """Start what is not running and wait until everything answers. Idempotent."""
        ensure_programs([r for c in self.components for r in c.requirements], say)
        self.paths.home.mkdir(parents=True, exist_ok=True)
        self.check_layout()
        credentials = self.store.ensure(self.cluster_endpoints())
        to_wait = []
        for component in self.components:
            if component.pid() is not None:
                say(f"{component.name}: already running (pid {component.pid()})")
            else:
                component.check_ports_free()
                component.prepare(say)
                say(f"{component.name}: starting")
                component.start()
            to_wait.append(component)
        _layout_file(self.paths).write_text(f"{self.brokers}\n")
        for component in to_wait:
            took = await component.wait_ready(READY_TIMEOUT_S)
            say(f"{component.name}: ready at {component.endpoint} ({took:.1f}s)")
        await self.provision(credentials, say)
        return await self.status()

    async def provision(self, credentials: Credentials, say: Say = print) -> None:
        """Every principal its PostgreSQL role, Redis user and Kafka user; the namespace its
        ACLs and topics. Idempotent: `up` runs it every time."""
        names = {c.name: c for c in self.components}
        postgres = names.get("postgres")
        if isinstance(postgres, Postgres):
            conn = await postgres.admin_connection()
            try:
                await provision_roles(conn, credentials, DATABASE)
            finally:
                await conn.close()
        redis = names.get("redis")
        if isinstance(redis, Redis):
            await _provision_redis_users(redis, acl_file(credentials))
        if self.kafka_nodes:
            await provision_users(credentials)
            if self.provision_namespace:
                settings = KafkaSettings(
                    bootstrap=self.bootstrap,
                    topic_prefix=self.namespace,
                    security_protocol="PLAINTEXT",
                    username=None,
                    password=None,
                )
                await provision_namespace(credentials, settings)
                shown = repr(self.namespace) if self.namespace else "the default namespace"
                say(f"kafka: users, ACLs and topics of {shown} in place")

    def down(self, *, wipe: bool = False, say: Say = print) -> None:
        """Stop what `up` started (by pid); with `wipe`, delete the data too.

        The nodes of a cluster stop together: one by one, the last would wait for a quorum
        that left before it.
        """
        kafka = [c for c in reversed(self.components) if isinstance(c, Kafka)]
        order: list[list[Component]] = []
        for component in reversed(self.components):
            if not isinstance(component, Kafka):
                order.append([component])
            elif component is kafka[0]:
                order.append(list(kafka))
        for together in order:
            with ThreadPoolExecutor(max_workers=len(together)) as pool:
                for line in pool.map(lambda c: self._stop(c, wipe), together):
                    say(line)

    @staticmethod
    def _stop(component: Component, wipe: bool) -> str:
        started = time.monotonic()
        if component.stop():
            line = f"{component.name}: stopped ({time.monotonic() - started:.1f}s)"
        else:
            line = f"{component.name}: not running"
        if wipe:
            component.wipe()
            line += ", data wiped"
        return line

    async def status(self) -> list[ComponentStatus]:
        """Each component's endpoint and state; for a cluster, each node's controller role."""
        out = []
        for component in self.components:
            pid = component.pid()
            state = "stopped"
            if pid is not None:
                try:
                    await component.ready()
                    state = "ready"
                except Exception:
                    state = "running"
            out.append(ComponentStatus(component.name, component.endpoint, state, pid))
        if self.brokers == 1:
            return out
        leader = await self.active_controller()
        roles = {
            k.name: "active controller" if k.node_id == leader else "controller"
            for k in self.kafka_nodes
        }
        return [
            dataclasses.replace(s, role=roles[s.name]) if s.name in roles and s.pid else s
            for s in out
        ]

    async def active_controller(self) -> int | None:
        """The node id of the cluster's active controller (None while no node answers)."""
        live = [k.endpoint for k in self.kafka_nodes if k.pid() is not None]
        if not live:
            return None
        try:
            settings = admin_settings(self.credentials(), ",".join(live))
            return (await describe_quorum(settings)).leader
        except Exception:
            return None


async def _provision_redis_users(redis: Redis, wanted: str) -> None:
    """Give a running server the users of `wanted` (an ACL file), when it lacks them.

    ACL LOAD replaces every user, and the server disconnects each client logged in as one: the
    services' connections would be cut by every `up`. It runs only when the file changes or the
    server lacks a user of it (the server reads the file as it starts)."""
    acl = redis.dir / "users.acl"
    changed = not acl.exists() or acl.read_text() != wanted
    if changed:
        write_private(acl, wanted)
    client = aioredis.from_url(redis.admin_url())
    try:
        if not changed:
            users = {
                u.decode() if isinstance(u, bytes) else str(u) for u in await client.acl_users()
            }
            expected = {line.split()[1] for line in wanted.splitlines() if line.startswith("user ")}
            if expected <= users:
                return
        await client.acl_load()
    finally:
        await client.aclose()
