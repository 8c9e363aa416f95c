"""Submitting runs, and timing their durable steps as the log records them.

A durable step is what the peers count: a model decision (on agent.decisions) or a tool
result (on agent.observations), acknowledged by the broker. The driver reads those topics and
agent.results directly, every partition, from the end they had before the goals were sent, and
notes when each record reached it: a record can only be read once it is durable, so the gap
between two records of a run is the time that run's next step took. The events' own
`occurred_at` (stamped by the producing service before it sent them) is kept too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from loopline_bus import KafkaBus, Outbound
from loopline_events import DECISIONS, GOALS, OBSERVATIONS, RESULTS, Envelope
from loopline_runtime import KafkaSettings
from pydantic_core import from_json

from bench._sizes import goal

STEP_TOPICS = (DECISIONS.name, OBSERVATIONS.name)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One durable step of a run, as the driver read it."""

    received: float
    """time.perf_counter() when the driver read it."""
    occurred: float
    """The event's occurred_at, POSIX seconds."""
    kind: str


@dataclass
class RunTrace:
    """What the driver saw of one run."""

    submitted: float = 0.0
    """time.perf_counter() once the goal was acknowledged."""
    submitted_at: float = 0.0
    """The goal's occurred_at, POSIX seconds."""
    steps: list[StepRecord] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    result: str | None = None
    answer: str = ""
    finished: float = 0.0

    def gaps(self, *, clock: str = "received") -> list[float]:
        """Seconds each durable step took: from the previous one (or the goal) to it."""
        if clock == "received":
            times = [self.submitted, *sorted(s.received for s in self.steps)]
        else:
            times = [self.submitted_at, *sorted(s.occurred for s in self.steps)]
        return [b - a for a, b in itertools.pairwise(times)]


def new_run_ids(count: int, tag: str) -> list[str]:
    """Unique run ids."""
    return [f"{tag}-{i}-{uuid.uuid4().hex[:8]}" for i in range(count)]


class StepLog:
    """Follows agent.decisions, agent.observations and agent.results of a namespace."""

    def __init__(self, settings: KafkaSettings):
        self.settings = settings
        self.runs: dict[str, RunTrace] = {}
        self.decisions = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer = AIOKafkaConsumer(
            **settings.client_options(),
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=100,
        )

    async def start(self) -> None:
        """Assign every partition at its current end, then follow in the background."""
        topics = [self.settings.topic_prefix + t for t in (*STEP_TOPICS, RESULTS.name)]
        counts = await partition_counts(self.settings, topics)
        assignment = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
        await self._consumer.start()
        self._consumer.assign(assignment)
        await self._consumer.seek_to_end(*assignment)
        for tp in assignment:  # resolve positions now, before any goal is sent
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._follow(), name="bench-step-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def expect(self, run_ids: Iterable[str]) -> None:
        """Track these runs (records of other runs are ignored)."""
        for run_id in run_ids:
            self.runs.setdefault(run_id, RunTrace())

    async def _follow(self) -> None:
        prefix = len(self.settings.topic_prefix)
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for tp, messages in batch.items():
                topic = tp.topic[prefix:]
                for m in messages:
                    self._record(topic, (m.key or b"").decode(), m.value or b"", now)
            if batch:
                self._changed.set()

    def _record(self, topic: str, run_id: str, value: bytes, now: float) -> None:
        trace = self.runs.get(run_id)
        if trace is None:
            return
        data = from_json(value)
        event_id = str(data["event_id"])
        if event_id in trace.seen:
            return  # a redelivered step: the same event again
        trace.seen.add(event_id)
        occurred = datetime.fromisoformat(data["occurred_at"]).timestamp()
        if topic == RESULTS.name:
            if trace.result is None:
                trace.result, trace.finished = str(data["type"]), now
                trace.answer = str(data["payload"].get("answer") or data["payload"])
            return
        if topic == DECISIONS.name:
            self.decisions += 1
        trace.steps.append(StepRecord(now, occurred, str(data["type"])))

    async def wait_finished(self, run_ids: Sequence[str], timeout: float) -> None:
        """Return once every run has a result; TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while any(self.runs[r].result is None for r in run_ids):
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(self, decisions: int, timeout: float) -> None:
        """Return once `decisions` decisions of the tracked runs were read."""
        async with asyncio.timeout(timeout):
            while self.decisions < decisions:
                self._changed.clear()
                await self._changed.wait()


async def submit(bus: KafkaBus, log: StepLog, run_ids: Sequence[str], iterations: int) -> None:
    """Publish the runs' goals at once and note when the broker acknowledged them."""
    log.expect(run_ids)
    events = [Envelope.of(goal(iterations), run_id=r, producer="bench") for r in run_ids]
    await bus.publish_many([Outbound(GOALS.name, e) for e in events])
    acked = time.perf_counter()
    for event in events:
        trace = log.runs[event.run_id]
        trace.submitted, trace.submitted_at = acked, event.occurred_at.timestamp()


def check_counted(log: StepLog, run_ids: Sequence[str], iterations: int) -> list[str]:
    """Runs that did not end as counting to `iterations` should: each with what it got."""
    wrong = []
    for run_id in run_ids:
        trace = log.runs[run_id]
        if trace.result != "RunCompleted" or f"I counted to {iterations}" not in trace.answer:
            wrong.append(f"{run_id}: {trace.result} {trace.answer[:200]}")
    return wrong


async def partition_counts(settings: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described if d.get("partitions")}
