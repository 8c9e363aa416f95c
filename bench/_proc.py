"""CPU time of processes and of the whole machine, read from /proc.

A process's CPU is `utime + stime` from /proc/PID/stat. For a server that forks (PostgreSQL
starts a backend per connection) the whole tree counts, and so do its exited children
(`cutime + cstime` of the parent that reaped them), so a delta over a window is right even
when backends come and go. The machine's figure is every non-idle jiffy of /proc/stat, for
cross-checking: it includes whatever else the machine was doing.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Watched:
    """A process whose CPU counts: by itself, or with every descendant (`tree`)."""

    name: str
    pid: int
    tree: bool = False


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its closing one.
    return text.rsplit(")", 1)[1].split()


def _own_ticks(fields: list[str], *, children: bool) -> tuple[int, int]:
    """(user, system) ticks."""
    # Fields after the name start at index 3 of the man page (state): utime is 14, stime 15,
    # cutime 16, cstime 17, i.e. 11..14 here.
    user, system = int(fields[11]), int(fields[12])
    if children:
        user, system = user + int(fields[13]), system + int(fields[14])
    return user, system


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children[int(fields[1])].append(int(entry.name))
    return children


def process_ticks(
    watched: Watched, children: Mapping[int, list[int]] | None = None
) -> tuple[int, int]:
    """(user, system) CPU ticks used so far by `watched` (and its tree, when asked)."""
    fields = _stat_fields(watched.pid)
    if fields is None:
        return 0, 0
    if not watched.tree:
        return _own_ticks(fields, children=False)
    tree = children if children is not None else _children_map()
    user = system = 0
    todo = [watched.pid]
    while todo:
        pid = todo.pop()
        found = fields if pid == watched.pid else _stat_fields(pid)
        if found is not None:
            u, s = _own_ticks(found, children=True)
            user, system = user + u, system + s
        todo += tree.get(pid, [])
    return user, system


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot: busy excludes idle and iowait."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    values = [int(v) for v in first[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = values
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


@dataclass
class CpuWindow:
    """CPU used by the watched processes between `start()` and `stop()`."""

    watched: list[Watched]
    _before: dict[str, tuple[float, float]] = field(default_factory=dict)
    _machine_before: tuple[int, int] = (0, 0)
    seconds: dict[str, float] = field(default_factory=dict)
    system_seconds: dict[str, float] = field(default_factory=dict)
    """Of `seconds`, the time in the kernel (system calls: sockets, files)."""
    machine_busy_s: float = 0.0
    machine_utilisation: float = 0.0

    def _read(self) -> dict[str, tuple[float, float]]:
        """(user, system) CPU seconds of each watched process so far. This process's own are
        read from its precise clock: ticks (10 ms) would round a short window's to nothing."""
        children = _children_map()
        used: dict[str, tuple[float, float]] = {}
        for w in self.watched:
            if w.pid == os.getpid() and not w.tree:
                system = os.times().system
                used[w.name] = (time.process_time() - system, system)
            else:
                user, system = process_ticks(w, children)
                used[w.name] = (user / TICKS_PER_S, system / TICKS_PER_S)
        return used

    def start(self) -> None:
        self._machine_before = machine_jiffies()
        self._before = self._read()

    def stop(self) -> None:
        after = self._read()
        busy, total = machine_jiffies()
        for name, (user, system) in after.items():
            user_before, system_before = self._before.get(name, (0.0, 0.0))
            self.system_seconds[name] = system - system_before
            self.seconds[name] = user - user_before + self.system_seconds[name]
        self.machine_busy_s = (busy - self._machine_before[0]) / TICKS_PER_S
        elapsed = total - self._machine_before[1]
        self.machine_utilisation = (busy - self._machine_before[0]) / elapsed if elapsed else 0.0

    @property
    def total_s(self) -> float:
        """CPU seconds of every watched process together."""
        return sum(self.seconds.values())

    def as_dict(self, steps: int) -> dict[str, object]:
        """The window's figures, per process and per durable step."""
        per_step = (lambda s: 1000.0 * s / steps) if steps else (lambda s: 0.0)
        return {
            "processes_s": {k: round(v, 3) for k, v in self.seconds.items()},
            "processes_ms_per_step": {k: round(per_step(v), 3) for k, v in self.seconds.items()},
            "processes_kernel_share": {
                k: round(self.system_seconds[k] / v, 2) if v else 0.0
                for k, v in self.seconds.items()
            },
            "total_s": round(self.total_s, 3),
            "ms_per_step": round(per_step(self.total_s), 3),
            "machine_busy_s": round(self.machine_busy_s, 3),
            "machine_ms_per_step": round(per_step(self.machine_busy_s), 3),
            "machine_utilisation": round(self.machine_utilisation, 3),
            "other_processes_s": round(max(0.0, self.machine_busy_s - self.total_s), 3),
        }
