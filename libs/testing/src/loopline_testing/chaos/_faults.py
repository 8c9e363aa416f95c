"""The faults the chaos suite injects into a running system, each timed as it happens."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from loopline_events import utcnow

from loopline_testing._system import System
from loopline_testing.chaos._infra import PrivateInfra


@dataclass(frozen=True)
class Target:
    """What a fault is injected into: the services and the servers under them."""

    system: System
    infra: PrivateInfra
    say: Callable[[str], None] = print


@dataclass(frozen=True)
class Injected:
    """A fault as it happened."""

    fault: str
    started: datetime
    """The kill, the stop, the flush."""
    until: datetime
    """When the outage ended (the server answered again); the same moment for a kill, whose
    restart is part of what the runs wait for."""
    ended: datetime | None = None
    """When the fault's injection returned (its restarts and catching up done)."""

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


@dataclass(frozen=True)
class KillBroker(Fault):
    """SIGKILL one broker of a three-node cluster (every node a broker and a controller): the
    active controller, or another node. It stays down for `down_s` (its partitions' leaders
    move to the others once the controller fences it), then starts again and catches up."""

    which: Literal["broker", "active controller"] = "broker"
    down_s: float = 20.0

    @property
    def name(self) -> str:
        return f"kill -9 {'a broker' if self.which == 'broker' else 'the active controller'}"

    async def inject(self, target: Target) -> Injected:
        controller = await target.infra.active_controller()
        if self.which == "active controller":
            node = controller
        else:
            node = next(k for k in target.infra.infra.kafka_nodes if k is not controller)
        started = utcnow()
        await target.infra.kill(node.name)
        target.say(f"{self.name}: killed {node.name}; back in {self.down_s:g} s")
        await asyncio.sleep(self.down_s)
        took = await target.infra.start(node.name)
        caught_up = await target.infra.wait_in_sync()
        target.say(f"{node.name} answers again after {took:.1f} s, in sync {caught_up:.1f} s later")
        return Injected(self.name, started, started)


@dataclass(frozen=True)
class RestartBroker(Fault):
    """One step of a rolling restart of a three-node cluster, as a deploy does it: stop a
    broker (a controlled shutdown moves its leaders away first), start it, and wait until
    every partition is in sync again. Step 1 and 2 restart the other nodes, step 3 the active
    controller; the scenario lets the runs go on between steps, as an operator waits between
    brokers."""

    step: int
    steps: int = 3

    @property
    def name(self) -> str:
        return f"rolling restart {self.step}/{self.steps}"

    async def inject(self, target: Target) -> Injected:
        controller = await target.infra.active_controller()
        others = [k for k in target.infra.infra.kafka_nodes if k is not controller]
        node = controller if self.step == self.steps else others[(self.step - 1) % len(others)]
        started = utcnow()
        stopped = await target.infra.stop(node.name)
        took = await target.infra.start(node.name)
        caught_up = await target.infra.wait_in_sync()
        target.say(
            f"{self.name}: {node.name} stopped in {stopped:.1f} s, answered {took:.1f} s later, "
            f"in sync {caught_up:.1f} s after that"
        )
        return Injected(self.name, started, started)
