"""The long run: one run of many steps, to show that a step costs the same at its 1,000th as at
its 10th — in bytes on Kafka, and in time.

Bytes: every record of the run on the run topics (its contexts, decisions, tool results and
result), as the broker holds them, summed by step. Time: the gaps between the run's durable
steps, as the driver reads them, the first 20 steps against the last 20.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from loopline_bus import partition_for, seek_to_first
from loopline_events import CONTEXTS, DECISIONS, OBSERVATIONS, RESULTS
from pydantic_core import from_json

from bench._live import Driver
from bench._stats import summary_ms
from bench._steps import partition_counts

RUN_TOPICS = (CONTEXTS.name, DECISIONS.name, OBSERVATIONS.name, RESULTS.name)
PROBES = (10, 100, 1000)
"""Steps whose bytes are reported."""
WINDOW = 20
"""Steps compared at the start and at the end."""


async def long_run(driver: Driver, iterations: int) -> dict[str, Any]:
    """One run of `iterations` steps: its bytes per step and its step times, early and late."""
    (run_id,) = await driver.run(1, iterations, "long")
    trace = driver.log.runs[run_id]
    gaps = trace.gaps()
    per_step = 2  # a decision and a tool result each step
    early, late = gaps[: WINDOW * per_step], gaps[-(WINDOW * per_step) - 1 : -1]
    sizes = await bytes_by_step(driver, run_id)
    early_ms, late_ms = summary_ms(early), summary_ms(late)
    return {
        "iterations": iterations,
        "bytes_per_step": {str(k): sizes.get(k) for k in PROBES if k <= iterations},
        "context_bytes_per_step": {str(k): sizes.get(-k) for k in PROBES if k <= iterations},
        "largest_context_bytes": max((v for k, v in sizes.items() if k < 0), default=0),
        f"first_{WINDOW}_steps": early_ms,
        f"last_{WINDOW}_steps": late_ms,
        "late_over_early": round(late_ms["mean_ms"] / early_ms["mean_ms"], 3)
        if early_ms["mean_ms"]
        else None,
    }


async def bytes_by_step(driver: Driver, run_id: str) -> dict[int, int]:
    """Bytes of the run's records by step (its contexts alone under the negated step)."""
    settings = driver.bus.settings
    consumer = AIOKafkaConsumer(**settings.client_options(), enable_auto_commit=False)
    await consumer.start()
    out: dict[int, int] = defaultdict(int)
    try:
        key = run_id.encode()
        topics = [settings.topic_prefix + t for t in RUN_TOPICS]
        counts = await partition_counts(settings, topics)
        parts = [TopicPartition(t, partition_for(key, counts[t])) for t in topics]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await seek_to_first(consumer, parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    if r.key != key:
                        continue
                    seq = int(from_json(r.value)["seq"])
                    out[seq] += len(r.value)
                    if tp.topic.endswith(CONTEXTS.name):
                        out[-seq] += len(r.value)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    if not out:  # the run went through these partitions: reading none of it is a fault
        raise RuntimeError(f"read no record of run {run_id} in {parts} (ends {ends})")
    return dict(out)
