"""A private Kafka (one broker or three), Redis and PostgreSQL that the chaos suite may
restart, flush, stop and kill.

The shared servers of a development machine serve every other test: restarting them would
fail those tests. The chaos suite brings up a set of its own, on free ports and in a home of
its own, through the same `Infra` code as `loopline infra up`, and wipes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import redis.asyncio as aioredis
from loopline_bus import TopicAdmin
from loopline_infra import (
    ADMIN,
    CredentialStore,
    Infra,
    Kafka,
    Paths,
    Redis,
    default_paths,
    default_ports,
)
from loopline_runtime import Endpoints

from loopline_testing.plugin import granted

NEEDED = ("postgres", "redis")
"""Besides Kafka, the servers the four services need; nothing else is started."""

READY_TIMEOUT_S = 120.0
IN_SYNC_TIMEOUT_S = 180.0


def free_ports(count: int) -> list[int]:
    """`count` TCP ports nothing listens on now (the kernel's choice, all different)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class PrivateInfra:
    """Kafka, Redis and PostgreSQL of our own; `async with PrivateInfra() as infra:`."""

    def __init__(
        self,
        say: Callable[[str], None] | None = None,
        *,
        brokers: int = 1,
        servers: tuple[str, ...] = NEEDED,
    ) -> None:
        base = default_paths()
        base.home.mkdir(parents=True, exist_ok=True)
        # Under the project's home, not a 0700 temp dir: as root, PostgreSQL runs as its own
        # account and must reach its data folder.
        self.home = Path(tempfile.mkdtemp(prefix="chaos-", dir=base.home))
        self.home.chmod(0o755)
        redis, postgres, *kafka = free_ports(2 + 2 * brokers)
        nodes = list(zip(kafka[::2], kafka[1::2], strict=True))
        shared = default_ports()
        ports = dataclasses.replace(
            shared,
            kafka=nodes[0][0],
            kafka_controller=nodes[0][1],
            more_kafka=tuple(nodes[1:]),
            # A server not started here is the shared one: the credentials file says so.
            redis=redis if "redis" in servers else shared.redis,
            postgres=postgres if "postgres" in servers else shared.postgres,
        )
        paths = Paths(project=base.project, home=self.home, cache=base.cache)
        # The principals keep the passwords they have on the shared servers, which the
        # services use for what is not started here.
        seed = CredentialStore(base).load()
        if seed is not None:
            CredentialStore(paths).write(seed)
        self.infra = Infra(paths, ports, brokers=brokers)
        self.infra.provision_namespace = False  # each scenario makes its own namespace
        self.infra.components = tuple(
            c for c in self.infra.components if c.name in servers or isinstance(c, Kafka)
        )
        self.brokers = brokers
        self.say = say or (lambda _: None)

    @property
    def store(self) -> CredentialStore:
        """Every principal's credentials for these servers."""
        return self.infra.store

    @property
    def endpoints(self) -> Endpoints:
        """How the suite reaches these servers, as the operator (the shared ones for a server
        not started here)."""
        return self.infra.endpoints()

    def granted(self, namespace: str) -> contextlib.AbstractContextManager[str]:
        """Every principal's ACLs in `namespace` while the block runs."""
        return granted(self.store, namespace)

    async def up(self) -> None:
        """Start the three servers and wait until each answers."""
        await self.infra.up(say=self.say)

    def down(self) -> None:
        """Stop the servers and delete their data and the home."""
        self.infra.down(wipe=True, say=self.say)
        shutil.rmtree(self.home, ignore_errors=True)

    async def __aenter__(self) -> Self:
        try:
            await self.up()
        except BaseException:
            await asyncio.to_thread(self.down)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.down)

    async def stop(self, name: str) -> float:
        """Stop one server (`kafka` or `kafka-N`, `redis`, `postgres`) cleanly; seconds it
        took."""
        started = time.monotonic()
        await asyncio.to_thread(self.infra.component(name).stop)
        return time.monotonic() - started

    async def start(self, name: str) -> float:
        """Start a stopped server again and wait until it answers; seconds it took."""
        component = self.infra.component(name)
        started = time.monotonic()
        await asyncio.to_thread(component.start)
        await component.wait_ready(READY_TIMEOUT_S)
        return time.monotonic() - started

    async def kill(self, name: str, timeout: float = 10.0) -> int:
        """SIGKILL one server (a crash: nothing flushed, no controlled shutdown) and wait
        until it is gone; its pid."""
        component = self.infra.component(name)
        pid = component.pid()
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(timeout):
            while True:
                if component.pid() is None:
                    return pid
                await asyncio.sleep(0.01)

    async def active_controller(self) -> Kafka:
        """The Kafka node that is the active controller now."""
        leader = await self.infra.active_controller()
        if leader is None:
            raise RuntimeError("no Kafka node says which is the active controller")
        return self.infra.kafka_node(leader)

    async def wait_in_sync(self, timeout: float = IN_SYNC_TIMEOUT_S) -> float:
        """Wait until every partition of every topic has all its replicas in sync again (a
        restarted broker has caught up); seconds it took."""
        started = time.monotonic()
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(Exception):
                    admin_settings = self.infra.endpoints(ADMIN).kafka
                    async with TopicAdmin(admin_settings) as admin:
                        if await admin.in_sync():
                            return time.monotonic() - started
                await asyncio.sleep(0.5)

    async def flush_redis(self) -> None:
        """Delete every key of every database, as a lost or replaced Redis would."""
        redis = self.infra.component("redis")
        assert isinstance(redis, Redis)
        client = aioredis.from_url(redis.admin_url())
        try:
            await client.flushall()
        finally:
            await client.aclose()
