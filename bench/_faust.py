"""The quota windows built with faust-streaming instead, for comparison: CPU per model call.

`bench/faust_quotas.py` runs in an environment of its own, brought by `uv run --no-project
--with faust-streaming==... --with aiokafka==...` (cached after the first time): faust pins
versions (click, among others) that the project's lock would otherwise have to follow. This
module starts a Kafka broker of its own (the shared one serves other work, whose CPU would
blur the broker's share), publishes the ModelDecided events the job reads (Loopline's own
encoding, one per model call, ten tenants), runs the job, and measures the broker's CPU over
the job's timed window, less what the idle broker burns in as long.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from loopline_bus import KafkaBus, Outbound
from loopline_events import DECISIONS, Envelope, ModelDecided, TokenUsage, TopicSpec
from loopline_runtime import KafkaSettings
from loopline_testing.chaos._infra import PrivateInfra

from bench._namespace import Namespace, new_namespace
from bench._proc import CpuWindow, Watched
from bench._progress import say

FAUST_ENV = ("faust-streaming==0.15.3", "aiokafka==0.14.0")
"""What the faust worker runs with (the versions decision 0008 tried)."""
WORKER = Path(__file__).resolve().parent / "faust_quotas.py"
TENANTS = 10
WORKER_TIMEOUT_S = 300.0
IDLE_S = 5.0
"""How long the idle broker is watched, for its own burn."""


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


async def faust_cpu(
    warmup: int, measure: int, *, shared: Namespace | None = None
) -> dict[str, Any]:
    """CPU per model call (one ModelDecided each) of the faust job and of its broker; with
    `shared`, on the shared broker in that namespace: the job's alone (quicker, for checking
    the harness: the broker's share cannot be told from other work there)."""
    if shared is not None:
        settings = shared.endpoints.kafka
        await _publish(settings, warmup + measure)
        say(f"faust: the quota windows as a faust app ({', '.join(FAUST_ENV)}), shared broker")
        figures = await _run_worker(settings, None, warmup, measure, 0.0)
        figures["python"] = sys.version.split()[0]
        return figures
    infra = PrivateInfra(say=lambda line: None)
    infra.infra.components = tuple(c for c in infra.infra.components if c.name == "kafka")
    say("faust: starting a Kafka broker of its own")
    async with infra:
        kafka = infra.infra.component("kafka")
        # A namespace of the broker's, its ACLs granted (as the shared broker's would be).
        settings = (await new_namespace("q", infra.infra)).endpoints.kafka
        pid = kafka.pid()
        assert pid is not None
        idle = CpuWindow([Watched("kafka", pid)])
        idle.start()
        await asyncio.sleep(IDLE_S)
        idle.stop()
        idle_rate = idle.seconds["kafka"] / IDLE_S
        await _publish(settings, warmup + measure)
        say(f"faust: the quota windows as a faust app ({', '.join(FAUST_ENV)})")
        figures = await _run_worker(settings, pid, warmup, measure, idle_rate)
    figures["python"] = sys.version.split()[0]
    return figures


def _login(settings: KafkaSettings) -> dict[str, str]:
    """The worker's SASL login, by environment (not its command line, which anyone sees)."""
    if settings.username is None or settings.password is None:
        return {}
    return {
        "FAUST_SASL_USERNAME": settings.username,
        "FAUST_SASL_PASSWORD": settings.password.get_secret_value(),
        "FAUST_SASL_MECHANISM": settings.sasl_mechanism,
    }


APP = "agent.quotas"
"""The faust app's id, within the namespace: under `agent.`, as Loopline's topics, so that the
topics faust makes of it (changelogs, repartition, its assignor's) are the namespace's too, and
so are its ACLs on a secured cluster."""


async def _publish(settings: KafkaSettings, count: int) -> None:
    bus = KafkaBus(settings=settings, client_id="bench-faust")
    # faust's own topics too: on a new broker its creating them sometimes never completes
    # (it waits for them in the metadata for ever), which would stop the measurement.
    internal = [
        f"{APP}-tokens-changelog",
        f"{APP}-cost-changelog",
        f"{DECISIONS.name}-by-tenant-repartition",
        f"{APP}-{settings.topic_prefix}{DECISIONS.name}-by-tenant-repartition",
    ]
    own = [TopicSpec(name, "faust's", partitions=DECISIONS.partitions) for name in internal]
    await bus.ensure_topics([DECISIONS, *own])
    await _coordinator_ready(settings)
    await bus.start()
    try:
        say(f"faust: publishing {count} decisions")
        events = _decisions(count)
        for start in range(0, len(events), 2000):
            await bus.publish_many(events[start : start + 2000])
    finally:
        await bus.stop()


async def _coordinator_ready(settings: KafkaSettings) -> None:
    """Join a group once, so that a new broker has created its offsets topic and elected a
    group coordinator before faust's consumer asks for one (it may wait long otherwise)."""
    consumer = AIOKafkaConsumer(
        settings.topic_prefix + DECISIONS.name,
        **settings.client_options(),
        group_id=f"{settings.topic_prefix}warm",
        enable_auto_commit=False,
    )
    async with asyncio.timeout(120):
        await consumer.start()
        try:
            while not consumer.assignment():  # joined: the coordinator answers
                await consumer.getmany(timeout_ms=200)
        finally:
            await consumer.stop()


async def _run_worker(
    settings: KafkaSettings, broker_pid: int | None, warmup: int, measure: int, idle_rate: float
) -> dict[str, Any]:
    uv = os.environ.get("UV") or shutil.which("uv") or "uv"
    command = [uv, "run", "--no-project", "--quiet", "--python", "3.11"]
    for requirement in FAUST_ENV:
        command += ["--with", requirement]
    command += [
        "python",
        str(WORKER),
        "--bootstrap",
        settings.bootstrap,
        "--topic",
        settings.topic_prefix + DECISIONS.name,
        "--app-id",
        f"{settings.topic_prefix}{APP}",
        "--partitions",
        str(DECISIONS.partitions),
        "--warmup",
        str(warmup),
        "--measure",
        str(measure),
    ]
    # faust keeps its tables' state in a data directory (the working one unless told).
    datadir = tempfile.TemporaryDirectory(prefix="loopline-faust-")
    command += ["--datadir", datadir.name]
    with datadir, tempfile.TemporaryFile() as log:  # faust logs a lot: an unread pipe fills
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env={**os.environ, **_login(settings), "PYTHONWARNINGS": "ignore"},
            start_new_session=True,  # uv starts the worker as its child: both go together
        )
        broker: CpuWindow | None = None
        try:
            figures, started, broker = await _read(process, broker_pid)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            figures = {}
        if process.returncode != 0 or not figures:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            return {"error": f"the faust worker failed ({process.returncode}): {tail}"}
    figures["job_ms_per_call"] = figures.pop("ms_per_call")
    if broker is None:
        return figures
    window = time.monotonic() - started
    broker_s = max(0.0, broker.seconds["kafka"] - idle_rate * window)
    figures["broker_ms_per_call"] = round(1000.0 * broker_s / measure, 4)
    figures["broker_idle_s_per_s"] = round(idle_rate, 4)
    figures["ms_per_call"] = round(figures["job_ms_per_call"] + figures["broker_ms_per_call"], 4)
    return figures


async def _read(
    process: asyncio.subprocess.Process, broker_pid: int | None
) -> tuple[dict[str, Any], float, CpuWindow | None]:
    """The worker's figures; when its timed window began; the broker's CPU over it."""
    broker = CpuWindow([Watched("kafka", broker_pid)]) if broker_pid is not None else None
    figures: dict[str, Any] = {}
    started = 0.0
    assert process.stdout is not None
    async with asyncio.timeout(WORKER_TIMEOUT_S):
        while line := await process.stdout.readline():
            if not line.startswith(b"{"):
                continue
            data = json.loads(line)
            if data.get("warm"):
                started = time.monotonic()
                if broker is not None:
                    broker.start()
            else:
                if broker is not None:
                    broker.stop()
                figures = data
        await process.wait()
    return figures, started, broker
