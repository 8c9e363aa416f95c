"""The quota windows built with faust-streaming instead, for comparison: CPU per model call.

`bench/faust_quotas.py` runs in an environment of its own, brought by `uv run --no-project
--with faust-streaming==... --with aiokafka==...` (cached after the first time): faust pins
versions (click, among others) that the project's lock would otherwise have to follow. This
module publishes the ModelDecided events it reads (Loopline's own encoding, one per model
call, ten tenants), runs it, and reads its one line of figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from loopline_bus import KafkaBus, Outbound
from loopline_events import DECISIONS, Envelope, ModelDecided, TokenUsage

from bench._namespace import Namespace
from bench._progress import say

FAUST_ENV = ("faust-streaming==0.15.3", "aiokafka==0.14.0")
"""What the faust worker runs with (the versions decision 0008 tried)."""
WORKER = Path(__file__).resolve().parent / "faust_quotas.py"
TENANTS = 10


def _decisions(count: int) -> list[Outbound]:
    runs = [f"run-{uuid.uuid4().hex[:8]}" for _ in range(max(1, count // 20))]
    out = []
    for n in range(count):
        decided = ModelDecided(
            agent="bench",
            model="anthropic:claude-sonnet-4-5",
            final_answer="It is 42.",
            usage=TokenUsage(prompt_tokens=1200, completion_tokens=80, cached_tokens=900),
        )
        event = Envelope.of(
            decided,
            run_id=runs[n % len(runs)],
            producer="planner",
            seq=n // len(runs) + 1,
            tenant=f"tenant-{n % TENANTS}",
        )
        out.append(Outbound(DECISIONS.name, event))
    return out


async def faust_cpu(ns: Namespace, warmup: int, measure: int) -> dict[str, Any]:
    """The faust worker's CPU per model call (one ModelDecided each), after its warm-up."""
    bus = KafkaBus(settings=ns.endpoints.kafka, client_id="bench-faust")
    await bus.ensure_topics([DECISIONS])
    await bus.start()
    try:
        say(f"faust: publishing {warmup + measure} decisions")
        events = _decisions(warmup + measure)
        for start in range(0, len(events), 2000):
            await bus.publish_many(events[start : start + 2000])
    finally:
        await bus.stop()
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    command = [uv, "run", "--no-project", "--quiet", "--python", "3.11"]
    for requirement in FAUST_ENV:
        command += ["--with", requirement]
    command += [
        "python",
        str(WORKER),
        "--bootstrap",
        ns.endpoints.kafka.bootstrap,
        "--topic",
        ns.prefix + DECISIONS.name,
        "--app-id",
        f"{ns.prefix}quotas",
        "--partitions",
        str(DECISIONS.partitions),
        "--warmup",
        str(warmup),
        "--measure",
        str(measure),
    ]
    say(f"faust: the quota windows as a faust app ({', '.join(FAUST_ENV)})")
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 600)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        tail = err.decode(errors="replace")[-2000:]
        return {"error": f"the faust worker failed ({process.returncode}): {tail}"}
    figures: dict[str, Any] = json.loads(lines[-1])
    figures["python"] = sys.version.split()[0]
    return figures
