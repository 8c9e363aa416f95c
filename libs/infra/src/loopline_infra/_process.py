"""Starting and stopping the processes `infra up` owns, tracked by pid files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class InfraError(RuntimeError):
    """A component could not be installed, started or stopped; the message says what to do."""


def read_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` (first line) if that process is alive."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists and is not a zombie."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def spawn(
    argv: Sequence[str], *, log: Path, pid_file: Path, env: dict[str, str] | None = None
) -> int:
    """Start `argv` detached from this process (its own session), output to `log`.

    Spawned, not wrapped in a `Popen`: the process is meant to outlive this one (servers,
    services), and is tracked by its pid file; `stop_pid` reaps it when this process stops it.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    program = shutil.which(argv[0]) or argv[0]
    with log.open("ab") as out, open(os.devnull, "rb") as nothing:
        pid = os.posix_spawn(
            program,
            list(argv),
            {**os.environ, **(env or {})},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, nothing.fileno(), 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 2),
            ],
            setsid=True,
        )
    pid_file.write_text(f"{pid}\n")
    return pid


def _reap(pid: int) -> None:
    """Collect `pid`'s exit status if it is a child of this process that has ended."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, *, timeout: float = 30.0) -> None:
    """SIGTERM `pid`, wait for it to exit, SIGKILL it after `timeout` seconds."""
    stop_pids([pid], timeout=timeout)


def stop_pids(pids: Sequence[int], *, timeout: float = 30.0) -> None:
    """SIGTERM each of `pids` at once, wait for all to exit (they wind down side by side),
    SIGKILL those still running after `timeout` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    running = [pid for pid in pids if pid_alive(pid)]
    while running and time.monotonic() <= deadline:
        time.sleep(0.1)
        running = [pid for pid in running if pid_alive(pid)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if running:
        time.sleep(0.2)
    for pid in pids:
        _reap(pid)


def run(argv: Sequence[str], *, what: str, user: str | None = None, cwd: Path | None = None) -> str:
    """Run a set-up command to completion; raise InfraError with its output if it fails."""
    full = ["runuser", "-u", user, "--", *argv] if user else list(argv)
    done = subprocess.run(full, capture_output=True, text=True, cwd=cwd, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise InfraError(f"{what} failed (exit {done.returncode}):\n" + "\n".join(tail))
    return done.stdout


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
