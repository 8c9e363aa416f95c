"""The benchmark's own namespace on the shared infrastructure, and the services running in it.

Everything the benchmark creates carries its topic prefix: Kafka topics and groups, the
services' PostgreSQL schemas and their Redis keys. Its LOOPLINE_HOME is a temporary folder
(service pids, logs and the agents file). `cleanup` removes all of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from loopline_events import SigningKey
from loopline_infra import (
    OPERATOR,
    SERVICES,
    CredentialStore,
    Infra,
    Services,
    create_topics,
    default_paths,
    grant_namespace,
    revoke_namespace,
)
from loopline_runtime import AGENTS_FILE_VARIABLE, Endpoints, load_endpoints, schema_name
from loopline_testing._system import replication_asked
from loopline_testing.plugin import delete_topics, run_apart, session_access

from bench._proc import Watched
from bench._sizes import AGENTS_TOML

SCHEMAS = ("memory", "executor", "recovery", "artifacts", "gateway")
"""The PostgreSQL schemas the services create, each within the namespace."""


@dataclass
class Namespace:
    """A topic prefix and the endpoints pointing into it (as the operator), with the
    credentials of every principal when the cluster is one Loopline runs (its ACLs are
    granted for the namespace's life, and the services run each as its own principal)."""

    prefix: str
    endpoints: Endpoints
    store: CredentialStore | None = None

    @property
    def env(self) -> dict[str, str]:
        """The variables that put a Loopline process (the CLI, as the operator) into this
        namespace."""
        return {**self.endpoints.env(), "LOOPLINE_KAFKA_TOPIC_PREFIX": self.prefix}

    def signing_key(self) -> SigningKey | None:
        """The operator's key, which the driver signs its goals with (memory refuses them
        unsigned); None on a cluster whose credentials are not ours."""
        return None if self.store is None else self.store.require().signing_key(OPERATOR)

    async def cleanup(self) -> None:
        """Delete the namespace's topics, schemas and Redis keys; withdraw its ACLs."""
        await delete_topics(self.endpoints.kafka)
        conn = await asyncpg.connect(self.endpoints.postgres.dsn.get_secret_value())
        try:
            for base in SCHEMAS:
                name = schema_name(base, self.prefix)
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()
        redis = aioredis.from_url(self.endpoints.redis.url.get_secret_value())
        try:
            keys = [k async for k in redis.scan_iter(match=f"{self.prefix}*", count=1000)]
            for start in range(0, len(keys), 1000):
                await redis.delete(*keys[start : start + 1000])
        finally:
            await redis.aclose()
        if self.store is not None:
            await revoke_namespace(self.store.require(), self.prefix)


async def new_namespace(tag: str = "", kafka: Infra | None = None) -> Namespace:
    """A namespace no one else uses, on the endpoints of the environment (on the Kafka of
    `kafka` when given), its ACLs granted."""
    prefix = f"bench{uuid.uuid4().hex[:8]}{tag}."
    base = load_endpoints()
    store = kafka.store if kafka is not None else session_access(base)
    kafka_settings = (kafka.endpoints().kafka if kafka is not None else base.kafka).model_copy(
        update={"topic_prefix": prefix}
    )
    if store is not None:
        await grant_namespace(store.require(), prefix)
    endpoints = Endpoints(kafka=kafka_settings, redis=base.redis, postgres=base.postgres)
    return Namespace(prefix, endpoints, store)


class Home:
    """The benchmark's LOOPLINE_HOME: a temporary folder with the agents file."""

    def __init__(self, service_env: dict[str, str] | None = None) -> None:
        self.service_env = dict(service_env or {})
        """More variables for the services (experiments: LOOPLINE_KAFKA_LINGER_MS=0, ...)."""
        base = default_paths().home
        base.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="bench-", dir=base))
        self.agents = self.path / "agents.toml"
        self.agents.write_text(AGENTS_TOML)
        # This process folds runs too (replay, floor): with the same profiles as the services.
        os.environ[AGENTS_FILE_VARIABLE] = str(self.agents)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class System:
    """The four services as separate processes in a namespace (`replicas` of some), on the
    shared Kafka or on `kafka` (a private cluster)."""

    def __init__(
        self,
        namespace: Namespace,
        home: Home,
        folder: str = "system",
        kafka: Infra | None = None,
        env: dict[str, str] | None = None,
    ):
        # Each service as its own principal when the credentials are known; else as the
        # environment says.
        where = (
            {"LOOPLINE_KAFKA_TOPIC_PREFIX": namespace.prefix}
            if namespace.store is not None
            else namespace.env
        )
        env = {
            **where,
            AGENTS_FILE_VARIABLE: str(home.agents),
            **home.service_env,
            **(env or {}),
        }
        self.services = Services(home.path / folder, env, namespace.store)
        self.namespace = namespace
        self.kafka = kafka

    def up(self, replicas: dict[str, int] | None = None, names: Sequence[str] = SERVICES) -> None:
        """Start the services of `names` (one of each unless `replicas` says more) and wait
        for them."""
        if self.namespace.store is not None:
            # The services check their topics, they do not create them: the admin does, with
            # the replication the services are told to want.
            wanted = replication_asked(self.namespace.endpoints.kafka, self.services.env)
            run_apart(create_topics(self.namespace.store.require(), wanted))
        counts = {name: (replicas or {}).get(name, 1) for name in names}
        for count in sorted(set(counts.values())):
            started = [n for n in names if counts[n] == count]
            self.services.up(started, replicas=count, say=lambda _: None)

    def down(self) -> None:
        """Stop every service instance (SIGTERM; each commits what it did)."""
        with contextlib.suppress(Exception):
            self.services.down(say=lambda _: None)

    def pids(self) -> dict[str, int]:
        """Running instances by name."""
        return {s.name: s.pid for s in self.services.status() if s.pid is not None}

    def watched(self) -> list[Watched]:
        """Every process whose CPU a durable step costs: the services, the infrastructure and
        this driver."""
        return [
            *(Watched(name, pid) for name, pid in self.pids().items()),
            *infrastructure(kafka=self.kafka),
            Watched("bench driver", os.getpid()),
        ]


def infrastructure(
    names: Sequence[str] = ("kafka", "redis", "postgres"), *, kafka: Infra | None = None
) -> list[Watched]:
    """The servers' processes (PostgreSQL with its backends): the shared ones, with the Kafka
    nodes of `kafka` instead of the shared broker when given."""
    shared = Infra()
    components = [
        *((kafka or shared).kafka_nodes if "kafka" in names else []),
        *(shared.component(n) for n in ("redis", "postgres") if n in names),
    ]
    found = []
    for component in components:
        pid = component.pid()
        if pid is not None:
            found.append(Watched(component.name, pid, tree=component.name == "postgres"))
    return found
