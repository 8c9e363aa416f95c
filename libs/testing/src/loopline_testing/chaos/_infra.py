"""A private Kafka, Redis and PostgreSQL that the chaos suite may restart, flush and stop.

The shared servers of a development machine serve every other test: restarting them would
fail those tests. The chaos suite brings up a set of its own, on free ports and in a home of
its own, through the same `Infra` code as `loopline infra up`, and wipes it afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import redis.asyncio as aioredis
from loopline_infra import Infra, Paths, default_paths, default_ports
from loopline_runtime import Endpoints, KafkaSettings, PostgresSettings, RedisSettings

NEEDED = ("postgres", "redis", "kafka")
"""The servers the four services need; nothing else is started."""

READY_TIMEOUT_S = 120.0


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

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        base = default_paths()
        base.home.mkdir(parents=True, exist_ok=True)
        # Under the project's home, not a 0700 temp dir: as root, PostgreSQL runs as its own
        # account and must reach its data folder.
        self.home = Path(tempfile.mkdtemp(prefix="chaos-", dir=base.home))
        self.home.chmod(0o755)
        kafka, controller, redis, postgres = free_ports(4)
        ports = dataclasses.replace(
            default_ports(),
            kafka=kafka,
            kafka_controller=controller,
            redis=redis,
            postgres=postgres,
        )
        self.infra = Infra(Paths(project=base.project, home=self.home, cache=base.cache), ports)
        self.infra.components = tuple(c for c in self.infra.components if c.name in NEEDED)
        self.say = say or (lambda _: None)

    @property
    def endpoints(self) -> Endpoints:
        """How the services and the suite reach these servers."""
        env = self.infra.env()
        return Endpoints(
            kafka=KafkaSettings(bootstrap=env["LOOPLINE_KAFKA_BOOTSTRAP"]),
            redis=RedisSettings(url=env["LOOPLINE_REDIS_URL"]),
            postgres=PostgresSettings(dsn=env["LOOPLINE_POSTGRES_DSN"]),  # type: ignore[arg-type]
        )

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
        """Stop one server (`kafka`, `redis`, `postgres`) cleanly; seconds it took."""
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

    async def flush_redis(self) -> None:
        """Delete every key of every database, as a lost or replaced Redis would."""
        client = aioredis.from_url(self.endpoints.redis.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
