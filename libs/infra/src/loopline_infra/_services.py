"""The four Loopline services as background processes: `loopline services up|down|status`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopline_runtime import READY_FILE_VARIABLE

from loopline_infra._packages import Say
from loopline_infra._process import InfraError, read_pid, spawn, stop_pid, tail

SERVICES: tuple[str, ...] = ("memory", "planner", "tool-executor", "recovery")
"""Every service, in the order they start."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "running" or "stopped"
    pid: int | None
    log: Path


class Services:
    """Starts each service as `loopline serve NAME`, tracked by pid file, logging to a file."""

    def __init__(self, home: Path, env: Mapping[str, str] | None = None):
        self.dir = home / "services"
        self.env = dict(env or {})

    def _files(self, instance: str) -> tuple[Path, Path, Path]:
        return (
            self.dir / f"{instance}.pid",
            self.dir / f"{instance}.log",
            self.dir / f"{instance}.ready",
        )

    def up(
        self,
        names: Sequence[str] = SERVICES,
        *,
        replicas: int = 1,
        say: Say = print,
        timeout: float = 60.0,
    ) -> list[ServiceStatus]:
        """Start what is not running (`replicas` of each) and wait until each consumes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        waiting = []
        for name in names:
            for instance in _instances(name, replicas):
                pid_file, log, ready = self._files(instance)
                if read_pid(pid_file) is not None:
                    say(f"{instance}: already running (pid {read_pid(pid_file)})")
                    continue
                ready.unlink(missing_ok=True)
                argv = [sys.executable, "-m", "loopline.cli", "serve", name]
                spawn(
                    argv,
                    log=log,
                    pid_file=pid_file,
                    env={**self.env, READY_FILE_VARIABLE: str(ready)},
                )
                waiting.append(instance)
        deadline = time.monotonic() + timeout
        for instance in waiting:
            pid_file, log, ready = self._files(instance)
            while not ready.exists():
                if read_pid(pid_file) is None:
                    raise InfraError(f"{instance} exited during start-up; its log:\n{tail(log)}")
                if time.monotonic() > deadline:
                    raise InfraError(f"{instance} not ready after {timeout:.0f}s:\n{tail(log)}")
                time.sleep(0.1)
            say(f"{instance}: running (pid {read_pid(pid_file)}, log {log})")
        return self.status()

    def down(self, *, say: Say = print) -> None:
        """Stop every service instance started here (SIGTERM: each finishes and commits)."""
        for instance in self._known():
            pid_file, _, ready = self._files(instance)
            pid = read_pid(pid_file)
            if pid is not None:
                stop_pid(pid)
                say(f"{instance}: stopped")
            pid_file.unlink(missing_ok=True)
            ready.unlink(missing_ok=True)

    def kill(self, instance: str) -> int:
        """SIGKILL one instance (for failure tests); its pid."""
        pid = read_pid(self._files(instance)[0])
        if pid is None:
            raise InfraError(f"{instance} is not running")
        os.kill(pid, 9)
        return pid

    def status(self) -> list[ServiceStatus]:
        out = []
        for instance in self._known():
            pid_file, log, _ = self._files(instance)
            pid = read_pid(pid_file)
            out.append(ServiceStatus(instance, "running" if pid else "stopped", pid, log))
        return out

    def _known(self) -> list[str]:
        if not self.dir.exists():
            return []
        return sorted(p.stem for p in self.dir.glob("*.pid"))


def _instances(name: str, replicas: int) -> list[str]:
    if name not in SERVICES:
        raise InfraError(f"unknown service {name!r}; services: {', '.join(SERVICES)}")
    return [name] if replicas == 1 else [f"{name}-{i}" for i in range(1, replicas + 1)]
