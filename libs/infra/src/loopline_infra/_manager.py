"""`loopline infra up|down|status`: the one code path the Makefile, the CLI and the tests use."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from loopline_runtime import (
    DEFAULT_KAFKA_CONTROLLER_PORT,
    DEFAULT_KAFKA_PORT,
    DEFAULT_POSTGRES_PORT,
    DEFAULT_REDIS_PORT,
)

from loopline_infra._components import (
    DEFAULT_PROMETHEUS_PORT,
    Component,
    Kafka,
    Ports,
    Postgres,
    Redis,
)
from loopline_infra._packages import Say, ensure_programs
from loopline_infra._paths import Paths, default_paths
from loopline_infra._prometheus import Prometheus

READY_TIMEOUT_S = 120.0


def _port(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


def default_ports() -> Ports:
    """Ports of the project's own servers (LOOPLINE_INFRA_*_PORT), apart from the usual ones."""
    return Ports(
        kafka=_port("LOOPLINE_INFRA_KAFKA_PORT", DEFAULT_KAFKA_PORT),
        kafka_controller=_port(
            "LOOPLINE_INFRA_KAFKA_CONTROLLER_PORT", DEFAULT_KAFKA_CONTROLLER_PORT
        ),
        redis=_port("LOOPLINE_INFRA_REDIS_PORT", DEFAULT_REDIS_PORT),
        postgres=_port("LOOPLINE_INFRA_POSTGRES_PORT", DEFAULT_POSTGRES_PORT),
        prometheus=_port("LOOPLINE_INFRA_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT),
    )


@dataclass(frozen=True)
class ComponentStatus:
    """What `infra status` reports of one component."""

    name: str
    endpoint: str
    state: str  # "ready", "running" (not answering), "stopped"
    pid: int | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Infra:
    """The project's Kafka, Redis, PostgreSQL and Prometheus, as one unit."""

    def __init__(self, paths: Paths | None = None, ports: Ports | None = None):
        self.paths = paths or default_paths()
        self.ports = ports or default_ports()
        self.components: tuple[Component, ...] = (
            Postgres(self.paths, self.ports),
            Redis(self.paths, self.ports),
            Kafka(self.paths, self.ports),
            Prometheus(self.paths, self.ports),
        )

    def env(self) -> dict[str, str]:
        """The variables that point Loopline at these servers."""
        kafka, redis, postgres = (
            self.component(n).endpoint for n in ("kafka", "redis", "postgres")
        )
        return {
            "LOOPLINE_KAFKA_BOOTSTRAP": kafka,
            "LOOPLINE_REDIS_URL": redis,
            "LOOPLINE_POSTGRES_DSN": postgres,
        }

    def component(self, name: str) -> Component:
        """The component called `name` (kafka, redis, postgres, prometheus)."""
        return next(c for c in self.components if c.name == name)

    async def up(self, say: Say = print) -> list[ComponentStatus]:
        """Start what is not running and wait until everything answers. Idempotent."""
        ensure_programs([r for c in self.components for r in c.requirements], say)
        self.paths.home.mkdir(parents=True, exist_ok=True)
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
        for component in to_wait:
            took = await component.wait_ready(READY_TIMEOUT_S)
            say(f"{component.name}: ready at {component.endpoint} ({took:.1f}s)")
        return await self.status()

    def down(self, *, wipe: bool = False, say: Say = print) -> None:
        """Stop what `up` started (by pid); with `wipe`, delete the data too."""
        for component in reversed(self.components):
            started = time.monotonic()
            if component.stop():
                say(f"{component.name}: stopped ({time.monotonic() - started:.1f}s)")
            else:
                say(f"{component.name}: not running")
            if wipe:
                component.wipe()
                say(f"{component.name}: data wiped")

    async def status(self) -> list[ComponentStatus]:
        """Each component's endpoint and state."""
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
        return out
