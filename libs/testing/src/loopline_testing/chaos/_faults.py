"""The faults the chaos suite injects into a running system, each timed as it happens."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from loopline_events import utcnow

from loopline_testing._system import System
from loopline_testing.chaos._infra import PrivateInfra


@dataclass(frozen=True)
class Target:
    """What a fault is injected into: the services and the servers under them."""

    system: System
    infra: PrivateInfra


@dataclass(frozen=True)
class Injected:
    """A fault as it happened."""

    fault: str
    started: datetime
    """The kill, the stop, the flush."""
    until: datetime
    """When the outage ended (the server answered again); the same moment for a kill, whose
    restart is part of what the runs wait for."""

    @property
    def outage_s(self) -> float:
        return (self.until - self.started).total_seconds()


class Fault(ABC):
    """One thing that goes wrong."""

    @property
    @abstractmethod
    def name(self) -> str:
        """How the table names it."""

    @abstractmethod
    async def inject(self, target: Target) -> Injected:
        """Do it (and undo it: restart, start again), timing it."""


@dataclass(frozen=True)
class KillServices(Fault):
    """SIGKILL services at the same moment (a crash: nothing is flushed or committed), then
    start them again, as a supervisor would."""

    services: tuple[str, ...]

    @property
    def name(self) -> str:
        return "kill -9 " + " + ".join(self.services)

    async def inject(self, target: Target) -> Injected:
        started = utcnow()
        for service in self.services:
            target.system.kill(service)
        await target.system.restart(*self.services)
        return Injected(self.name, started, started)


@dataclass(frozen=True)
class RestartKafka(Fault):
    """Stop the broker and start it again: every client loses its connections."""

    @property
    def name(self) -> str:
        return "restart Kafka"

    async def inject(self, target: Target) -> Injected:
        started = utcnow()
        await target.infra.stop("kafka")
        await target.infra.start("kafka")
        return Injected(self.name, started, utcnow())


@dataclass(frozen=True)
class FlushRedis(Fault):
    """FLUSHALL: every run's hot state and every cached model reply are gone."""

    @property
    def name(self) -> str:
        return "flush Redis"

    async def inject(self, target: Target) -> Injected:
        started = utcnow()
        await target.infra.flush_redis()
        return Injected(self.name, started, started)


@dataclass(frozen=True)
class StopPostgres(Fault):
    """Stop PostgreSQL for a while (fast shutdown: sessions are cut), then start it again."""

    seconds: float = 10.0

    @property
    def name(self) -> str:
        return f"stop PostgreSQL {self.seconds:g} s"

    async def inject(self, target: Target) -> Injected:
        started = utcnow()
        took = await target.infra.stop("postgres")
        await asyncio.sleep(max(0.0, self.seconds - took))
        await target.infra.start("postgres")
        return Injected(self.name, started, utcnow())
