"""Where the services' CPU goes: py-spy attached to each service during a throughput run.

py-spy samples the stack of the thread holding each process's GIL (its Python work) and
writes them as collapsed stacks (`frame;frame;... count`), which speedscope.app, inferno and
flamegraph.pl open as flame graphs. The summary groups each sample by its innermost frame
(self time) into libraries (pydantic, JSON, aiokafka, asyncpg, redis, logging, asyncio, Loopline
code), and lists the top functions by self time and by total time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PY_SPY = "py-spy==0.4.3"
RATE_HZ = 100

CATEGORIES: dict[str, str] = {
    "pydantic": "pydantic (validation, serialisation)",
    "pydantic_core": "pydantic (validation, serialisation)",
    "pydantic_settings": "pydantic (validation, serialisation)",
    "json": "JSON (stdlib)",
    "aiokafka": "aiokafka",
    "asyncpg": "asyncpg",
    "redis": "redis-py",
    "logging": "logging",
    "asyncio": "asyncio event loop and sockets",
    "selectors.py": "asyncio event loop and sockets",
    "socket.py": "asyncio event loop and sockets",
    "prometheus_client": "metrics and tracing",
    "opentelemetry": "metrics and tracing",
    "trace": "metrics and tracing",
}
"""Library of a frame by the first part of its file's path, as py-spy shows it (relative to
its package root: `pydantic/main.py`, `loopline_memory/handlers.py`)."""
OTHER = "other (stdlib: uuid, hashlib, datetime, ...)"


def find_py_spy() -> list[str]:
    """The py-spy command: on PATH, or fetched from PyPI into uv's tool cache."""
    found = shutil.which("py-spy")
    if found:
        return [found]
    probe = subprocess.run(
        ["uv", "tool", "run", "--from", PY_SPY, "python", "-c",
         "import shutil; print(shutil.which('py-spy'))"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    path = probe.stdout.strip().splitlines()[-1] if probe.stdout.strip() else ""
    if probe.returncode != 0 or not path or path == "None":
        raise RuntimeError(f"py-spy is not available: {probe.stderr.strip()[-500:]}")
    return [path]


@dataclass
class Recording:
    name: str
    output: Path
    process: subprocess.Popen[bytes]


class Profiler:
    """py-spy attached to processes, from `start` until `stop`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.recordings: list[Recording] = []

    def start(self, pids: dict[str, int]) -> None:
        """Attach to each process (by name) and give py-spy a moment to start sampling."""
        command = find_py_spy()
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            output = self.folder / f"{name}.collapsed.txt"
            argv = [*command, "record", "--pid", str(pid), "--rate", str(RATE_HZ)]
            # Only the thread holding the GIL: what runs Python code. A thread in a system call
            # (a socket write) or waiting in the event loop has released it; /proc counts the
            # kernel's share apart.
            argv += ["--format", "raw", "--gil", "--output", str(output)]
            log = (self.folder / f"{name}.py-spy.log").open("wb")
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            self.recordings.append(Recording(name, output, process))
        time.sleep(2.0)
        for r in self.recordings:
            if r.process.poll() is not None:
                raise RuntimeError(f"py-spy could not attach to {r.name}: see {self.folder}")

    def stop(self) -> None:
        """Stop sampling (SIGINT makes py-spy write its file)."""
        for r in self.recordings:
            if r.process.poll() is None:
                os.kill(r.process.pid, signal.SIGINT)
        for r in self.recordings:
            try:
                r.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait()


def read_collapsed(path: Path) -> list[tuple[list[str], int]]:
    """Stacks (outermost frame first) and their sample counts."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def category(frame: str) -> str:
    """The library a frame (`function (file:line)`) belongs to."""
    top = frame.rpartition("(")[2].split("/", 1)[0]
    if top.startswith("loopline"):
        return "Loopline code"
    return CATEGORIES.get(top, OTHER)


def _function(frame: str) -> str:
    """`function (file)` without the line number."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})"


SCAFFOLDING = (
    "<frozen runpy>",
    "click/",
    "loopline/cli/",
    "asyncio/runners",
    "asyncio/base_events",
)
"""Frames under every sample (start-up, the event loop): left out of the total-time list."""


def _scaffolding(frame: str) -> bool:
    where = frame.rpartition("(")[2]
    return where.startswith(SCAFFOLDING) or frame.startswith("Handle._run ")


def summarise(path: Path, top: int = 12) -> dict[str, Any]:
    """Shares of the samples of one recording: by library, by function (self and total).

    Samples are of the thread holding the GIL: the process's Python work, without its time in
    the kernel. /proc gives the CPU, this gives where it went.
    """
    stacks = read_collapsed(path)
    total = sum(c for _, c in stacks) or 1
    by_category: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        by_category[category(frames[-1])] += count
        self_time[_function(frames[-1])] += count
        for f in {_function(f) for f in frames if not _scaffolding(f)}:
            inclusive[f] += count
    return {
        "samples": total,
        "categories_pct": {k: round(100.0 * v / total, 1) for k, v in by_category.most_common()},
        "top_self_pct": {k: round(100.0 * v / total, 1) for k, v in self_time.most_common(top)},
        "total_pct": {k: round(100.0 * v / total, 1) for k, v in inclusive.most_common(2 * top)},
    }


def markdown(summaries: dict[str, dict[str, Any]], measured: dict[str, Any]) -> str:
    """The profile's summary as Markdown, with each service's CPU per step from /proc."""
    steps, cpu = measured["durable_steps"], measured["cpu"]
    lines = [
        f"# Where the CPU goes: {steps} durable steps ({measured['runs']} concurrent runs), "
        f"py-spy at {RATE_HZ} Hz",
        "",
        f"Throughput with py-spy attached: {measured['steps_per_s']} steps/s. CPU per durable "
        "step (ms, /proc) of every process, and the share of it spent in the kernel:",
        "",
        "| process | ms per step | kernel share |",
        "|---|---|---|",
        *(
            f"| {k} | {v} | {cpu['processes_kernel_share'][k]:.0%} |"
            for k, v in sorted(cpu["processes_ms_per_step"].items(), key=lambda kv: -kv[1])
        ),
        "",
    ]
    for name, s in summaries.items():
        ms = cpu["processes_ms_per_step"].get(name, 0.0)
        lines += [
            f"## {name}: {ms} ms CPU per durable step, {s['samples']} samples",
            "",
            "| library (self time) | % |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in s["categories_pct"].items()),
            "",
            "| top functions, self time | % |",
            "|---|---|",
            *(f"| `{k}` | {v} |" for k, v in s["top_self_pct"].items()),
            "",
            "| functions, total time (self and callees) | % |",
            "|---|---|",
            *(f"| `{k}` | {v} |" for k, v in s["total_pct"].items()),
            "",
        ]
    return "\n".join(lines)
