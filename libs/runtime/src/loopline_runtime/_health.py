"""What `/readyz` asks: is this process serving, and is every component it started ready?

Components (a started bus) register themselves here, so a service's wiring code passes nothing
to the runtime: the process's lifecycle asks whatever was started in it.
"""

from __future__ import annotations

import enum
import weakref
from typing import Protocol


class Probe(Protocol):
    """A component that can say whether it is ready."""

    def readiness(self) -> str | None:
        """None when ready; else a short reason why not."""


class Phase(enum.Enum):
    """Where the process is in its life."""

    STARTING = "starting"
    SERVING = "serving"
    STOPPING = "stopping"


class Health:
    """The process's phase and the components registered by whatever it started."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self.api_port: int | None = None
        """Where the process serves an API of its own (the gateway), told in its ready file."""
        # By identity (components need not be hashable), and weakly: a component dropped
        # without being stopped is not kept alive by its health check.
        self._probes: dict[int, weakref.ref[Probe]] = {}

    def register(self, probe: Probe) -> None:
        """Ask `probe` too, from now until it is unregistered (or collected)."""
        key = id(probe)
        self._probes[key] = weakref.ref(probe, lambda _: self._probes.pop(key, None))

    def unregister(self, probe: Probe) -> None:
        """Stop asking `probe` (it is stopping)."""
        self._probes.pop(id(probe), None)

    def not_ready(self) -> list[str]:
        """Why the process is not ready; empty when it is."""
        if self.phase is not Phase.SERVING:
            return [f"service is {self.phase.value}"]
        reasons = []
        for ref in list(self._probes.values()):
            probe = ref()
            reason = probe.readiness() if probe is not None else None
            if reason is not None:
                reasons.append(reason)
        return reasons


PROCESS_HEALTH = Health()
"""The one Health of this process; buses register with it when they start."""


def register_probe(probe: Probe) -> None:
    """Have the process's readiness ask `probe` (a bus does this when it starts)."""
    PROCESS_HEALTH.register(probe)


def unregister_probe(probe: Probe) -> None:
    """Stop asking `probe` (a bus does this when it stops)."""
    PROCESS_HEALTH.unregister(probe)
