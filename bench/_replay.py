"""Replay: how fast a run's state is rebuilt from a log of 100,000 events.

The log is made of copies of one real run: the in-process loop plays a run with the services'
own handlers, and its records on memory's input topics (goal, decisions, tool results) are
published again and again, each copy with its own run id and event ids. Every copy's run id
maps to the same partition, so that partition of each topic holds the whole log: the worst
case for `loopline replay`, which reads a run's partitions from their start.

Two figures:
- `loopline replay RUN --json`, run as a user runs it (a new process): wall time with and
  without start-up (measured apart as `loopline replay --help`), and the records it scanned
  per second. It decodes and folds only its run's events; the rest it skips by key.
- the same code in this process over every run (read the four topics with `read_history`,
  then `fold` each run): events decoded and folded per second, read and fold apart.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaProducer
from loopline_bus import KafkaBus, RawRecord, partition_for, read_history
from loopline_events import Envelope, decode_event, derived_id, topic_spec
from loopline_memory.adapters.environment import load_environment
from loopline_memory.domain import RunStatus
from loopline_memory.domain.replay import MEMORY_INPUTS, MEMORY_OUTPUTS, fold

from bench._floor import record_run
from bench._live import BenchError
from bench._namespace import Namespace
from bench._proc import CpuWindow, Watched
from bench._progress import say

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PARTITION = 0
"""The partition every copy's run id maps to."""
SEND_CHUNK = 20_000
CLI_TRIES = 3
"""Runs of the CLI (and of its start-up alone); the quickest of each counts."""
MEASURABLE_S = 0.1


def _run_ids_on(partition: int, partitions: int, count: int) -> list[str]:
    """`count` run ids whose key the partitioner puts on `partition`."""
    found: list[str] = []
    while len(found) < count:
        run_id = f"replay-{len(found)}-{uuid.uuid4().hex[:8]}"
        if partition_for(run_id.encode(), partitions) == partition:
            found.append(run_id)
    return found


def renamed(events: Sequence[Envelope[Any]]) -> dict[bytes, bytes]:
    """New ids for a copy of a run's events, derived as the services derive them: an event
    the services made from another (`derived_id` of its cause) gets its id from its cause's
    new id, so the copy answers its own events as the original answered its own (memory
    folds only what answers what the run asked); the others (the goal) get fresh ones."""
    new: dict[UUID, UUID] = {}
    for event in sorted(events, key=lambda e: e.occurred_at):
        cause = event.causation_id
        if cause is not None and cause in new:
            for index in range(MAX_OUTPUTS):
                if derived_id(cause, event.producer, index) == event.event_id:
                    new[event.event_id] = derived_id(new[cause], event.producer, index)
                    break
        new.setdefault(event.event_id, uuid.uuid4())
    return {str(old).encode(): str(fresh).encode() for old, fresh in new.items()}


MAX_OUTPUTS = 64
"""Most events one event causes (a decision's tool results)."""


def _copy(template: RawRecord, run_from: bytes, run_id: str, ids: dict[bytes, bytes]) -> bytes:
    """The template record's value for another run: its run id and fresh event ids."""
    value = template.value.replace(run_from, run_id.encode())
    return _UUID.sub(lambda m: ids.setdefault(m.group(), str(uuid.uuid4()).encode()), value)


async def build_log(
    namespace: Namespace,
    template: Sequence[RawRecord],
    copies: int,
    contexts: Sequence[RawRecord] = (),
) -> tuple[list[str], float]:
    """Publish `copies` copies of the template run; their run ids and the seconds it took."""
    settings = namespace.endpoints.kafka
    specs = [topic_spec(t) for t in MEMORY_INPUTS]
    # Memory's output topics too (empty here): replays read its journal from them.
    outputs = [topic_spec(t) for t in MEMORY_OUTPUTS]
    await KafkaBus(settings=settings, specs=[*specs, *outputs]).ensure_topics()
    run_ids = _run_ids_on(PARTITION, specs[0].partitions, copies)
    producer = AIOKafkaProducer(
        **settings.client_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        events = [decode_event(r.value) for r in (*template, *contexts)]
        await _send_copies(producer, settings.topic_prefix, template, run_ids, events)
    finally:
        await producer.stop()
    return run_ids, time.perf_counter() - started


async def _send_copies(
    producer: AIOKafkaProducer,
    prefix: str,
    template: Sequence[RawRecord],
    run_ids: list[str],
    events: Sequence[Envelope[Any]],
) -> None:
    run_from = template[0].key or b""
    # Strictly increasing record times keep each run's events in order when topics are merged.
    stamp = int(time.time() * 1000) - len(run_ids) * len(template)
    pending = []
    for run_id in run_ids:
        ids = renamed(events)
        for record in template:
            stamp += 1
            sent = await producer.send(
                prefix + record.topic,
                _copy(record, run_from, run_id, ids),
                key=run_id.encode(),
                headers=list(record.headers),
                partition=PARTITION,
                timestamp_ms=stamp,
            )
            pending.append(sent)
        if len(pending) >= SEND_CHUNK:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def _cli(namespace: Namespace, *args: str) -> tuple[float, str]:
    """Run `loopline ARGS` in the namespace; its wall time and its output."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loopline.cli",
        *args,
        env={**os.environ, **namespace.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"loopline {' '.join(args)} exited {proc.returncode}: {err.decode()}")
    return took, out.decode()


async def cli_replay(namespace: Namespace, run_id: str, events: int) -> dict[str, Any]:
    """`loopline replay RUN --json` over the log, start-up measured apart; best of a few."""
    startup = min([(await _cli(namespace, "replay", "--help"))[0] for _ in range(CLI_TRIES)])
    walls = []
    for _ in range(CLI_TRIES):
        wall, out = await _cli(namespace, "replay", run_id, "--json")
        walls.append(wall)
    report = json.loads(out)
    if report["state"]["status"] != RunStatus.COMPLETED.value:
        raise BenchError(f"replay of {run_id} ended {report['state']['status']}")
    wall, scanning = min(walls), min(walls) - startup
    # Start-up varies by tenths of a second on a busy machine: below that, no rate to tell.
    rate = round(events / scanning) if scanning > MEASURABLE_S else None
    return {
        "wall_s": round(wall, 3),
        "startup_s": round(startup, 3),
        "tries": CLI_TRIES,
        "records_in_partitions": events,
        "events_folded": report["events_folded"],
        "records_scanned_per_s": rate,
        "records_scanned_per_s_with_startup": round(events / wall),
    }


async def in_process(namespace: Namespace, run_ids: Sequence[str]) -> dict[str, Any]:
    """Read every event of the log, then fold each run: both timed."""
    cpu = CpuWindow([Watched("bench driver", os.getpid())])
    cpu.start()
    started = time.perf_counter()
    recorded = await read_history(namespace.endpoints.kafka, MEMORY_INPUTS)
    read = time.perf_counter()
    runs: dict[str, list[Envelope[Any]]] = defaultdict(list)
    for r in recorded:
        runs[r.event.run_id].append(r.event)
    env = load_environment()
    replays = [fold(events, env) for events in runs.values()]
    folded = time.perf_counter()
    cpu.stop()
    events = len(recorded)
    done = sum(r.state is not None and r.state.status is RunStatus.COMPLETED for r in replays)
    if done != len(run_ids):
        raise BenchError(f"replay in process: {done} of {len(run_ids)} runs folded to the end")
    total = folded - started
    return {
        "events": events,
        "runs": len(replays),
        "read_s": round(read - started, 3),
        "fold_s": round(folded - read, 3),
        "read_events_per_s": round(events / (read - started)),
        "fold_events_per_s": round(events / (folded - read)),
        "events_per_s": round(events / total),
        "cpu": cpu.as_dict(events),
    }


async def replay(namespace: Namespace, events: int, iterations: int) -> dict[str, Any]:
    """Build a log of about `events` events of runs of `iterations` steps; time replays."""
    template, contexts = await record_run(iterations)
    copies = math.ceil(events / len(template))
    say(f"replay: publishing {copies} copies of a {len(template)}-event run")
    run_ids, took = await build_log(namespace, template, copies, contexts)
    total = copies * len(template)
    say(f"replay: {total} events published in {took:.1f}s; loopline replay ...")
    cli = await cli_replay(namespace, run_ids[len(run_ids) // 2], total)
    say(f"replay: the CLI took {cli['wall_s']}s; folding the whole log in process")
    return {
        "events": total,
        "runs": copies,
        "events_per_run": len(template),
        "partition": PARTITION,
        "publish_s": round(took, 3),
        "cli": cli,
        "in_process": await in_process(namespace, run_ids),
    }
