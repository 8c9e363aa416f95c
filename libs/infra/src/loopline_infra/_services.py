"""The Loopline processes in the background: the four services and the gateway
(`loopline services up|down|status`)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopline_runtime import READY_FILE_VARIABLE, read_ready_file

from loopline_infra._credentials import CredentialStore
from loopline_infra._packages import Say
from loopline_infra._process import InfraError, read_pid, spawn, stop_pids, tail

SERVICES: tuple[str, ...] = ("memory", "planner", "tool-executor", "recovery")
"""Every service, in the order they start."""

GATEWAY = "gateway"
"""The gateway: HTTP API and page for the users; one instance (it listens on a fixed port)."""

PROCESSES: tuple[str, ...] = (*SERVICES, GATEWAY)
"""What `services up` starts: the services, then the gateway."""


HTTP_HOST = "127.0.0.1"
"""Where the services started here serve HTTP: each on a free port, named in its ready file."""


@dataclass(frozen=True)
class ServiceStatus:
    """One service instance: its state, process, log and HTTP endpoints."""

    name: str
    state: str  # "running" or "stopped"
    pid: int | None
    log: Path
    http_port: int | None = None
    api_port: int | None = None

    @property
    def api_url(self) -> str | None:
        """Base URL of the API and page it serves (the gateway), while it runs."""
        if self.state != "running" or self.api_port is None:
            return None
        return f"http://{HTTP_HOST}:{self.api_port}"

    @property
    def url(self) -> str | None:
        """Base URL of its /metrics, /healthz and /readyz, while it runs."""
        if self.state != "running" or self.http_port is None:
            return None
        return f"http://{HTTP_HOST}:{self.http_port}"


def _service_of(instance: str) -> str:
    """`planner-2` → `planner`."""
    for name in PROCESSES:
        if instance == name or instance.startswith(f"{name}-"):
            return name
    return instance


class Services:
    """Starts each service as `loopline serve NAME`, tracked by pid file, logging to a file.

    Each instance serves HTTP on a free port of 127.0.0.1; once it is ready, a Prometheus file_sd
    target file `services/targets/<instance>.json` names it, until `down`. With a credential
    `store`, each process gets its own principal's variables (Kafka user, PostgreSQL role,
    Redis user, signing key) beside `env`, which then holds no credentials.
    """

    def __init__(
        self,
        home: Path,
        env: Mapping[str, str] | None = None,
        store: CredentialStore | None = None,
    ):
        self.dir = home / "services"
        self.targets = self.dir / "targets"
        self.env = dict(env or {})
        self.store = store

    def _files(self, instance: str) -> tuple[Path, Path, Path]:
        return (
            self.dir / f"{instance}.pid",
            self.dir / f"{instance}.log",
            self.dir / f"{instance}.ready",
        )

    def up(
        self,
        names: Sequence[str] = PROCESSES,
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
                    self._write_target(instance, ready)
                    continue
                ready.unlink(missing_ok=True)
                argv = [sys.executable, "-m", "loopline.cli", "serve", name]
                self._target(instance).unlink(missing_ok=True)
                # Several instances share this host: each takes a free port, whatever the
                # environment says, and tells it in its ready file.
                http = {"LOOPLINE_HTTP_HOST": HTTP_HOST, "LOOPLINE_HTTP_PORT": "0"}
                own = self.store.process_env(name) if self.store is not None else {}
                spawn(
                    argv,
                    log=log,
                    pid_file=pid_file,
                    env={**own, **self.env, **http, READY_FILE_VARIABLE: str(ready)},
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
            port = self._write_target(instance, ready)
            info = read_ready_file(ready)
            page = f", page http://{HTTP_HOST}:{info.api_port}/" if info and info.api_port else ""
            say(f"{instance}: running (pid {read_pid(pid_file)}, http :{port}{page}, log {log})")
        return self.status()

    def _target(self, instance: str) -> Path:
        return self.targets / f"{instance}.json"

    def _write_target(self, instance: str, ready: Path) -> int | None:
        """The file_sd target file of a ready instance; its HTTP port."""
        info = read_ready_file(ready)
        if info is None or info.http_port is None:
            return None
        self.targets.mkdir(parents=True, exist_ok=True)
        target = [
            {
                "targets": [f"{HTTP_HOST}:{info.http_port}"],
                "labels": {"service": _service_of(instance), "instance": instance},
            }
        ]
        # Prometheus re-reads the file when it changes: never let it see half of one.
        partial = self._target(instance).with_suffix(".tmp")
        partial.write_text(json.dumps(target, indent=2) + "\n")
        partial.replace(self._target(instance))
        return info.http_port

    def down(self, *, say: Say = print) -> None:
        """Stop every service instance started here (SIGTERM to all at once: each finishes
        and commits)."""
        instances = self._known()
        pids = {instance: read_pid(self._files(instance)[0]) for instance in instances}
        stop_pids([pid for pid in pids.values() if pid is not None])
        for instance in instances:
            pid_file, _, ready = self._files(instance)
            if pids[instance] is not None:
                say(f"{instance}: stopped")
            pid_file.unlink(missing_ok=True)
            ready.unlink(missing_ok=True)
            self._target(instance).unlink(missing_ok=True)

    def kill(self, instance: str) -> int:
        """SIGKILL one instance (for failure tests); its pid."""
        pid = read_pid(self._files(instance)[0])
        if pid is None:
            raise InfraError(f"{instance} is not running")
        os.kill(pid, 9)
        return pid

    def status(self) -> list[ServiceStatus]:
        """Every instance started here, running or not, with its HTTP port while it runs."""
        out = []
        for instance in self._known():
            pid_file, log, ready = self._files(instance)
            pid = read_pid(pid_file)
            info = read_ready_file(ready) if pid else None
            mine = info is not None and info.pid == pid
            port = info.http_port if info is not None and mine else None
            api = info.api_port if info is not None and mine else None
            state = "running" if pid else "stopped"
            out.append(ServiceStatus(instance, state, pid, log, port, api))
        return out

    def _known(self) -> list[str]:
        if not self.dir.exists():
            return []
        return sorted(p.stem for p in self.dir.glob("*.pid"))


def _instances(name: str, replicas: int) -> list[str]:
    if name not in PROCESSES:
        raise InfraError(f"unknown service {name!r}; services: {', '.join(PROCESSES)}")
    if name == GATEWAY or replicas == 1:
        return [name]
    return [f"{name}-{i}" for i in range(1, replicas + 1)]
