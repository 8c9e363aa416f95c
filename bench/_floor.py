"""The floor: the same loop in one process with no Kafka.

The services' own handlers (memory, planner, tool-executor), wired as each `main.py` wires
them, exchange events through `InMemoryBus`, the bus's in-process twin: the same dispatcher
decodes, validates and encodes every event, with no broker, no network and one event loop.
Recovery is left out: it handles dead letters (the loop makes none) and watches for stalled
runs; neither makes a step.

Two variants:
- `with_stores=True`: memory keeps runs in the real PostgreSQL and Redis (one transaction and
  one Redis write per event, as the service does), the planner its reply cache in Redis, the
  executor its ledger in PostgreSQL (unused by the pure calculator).
- `with_stores=False`: memory keeps each run's state as the JSON it would write to Redis, in a
  dict; no reply cache, no ledger. What the domain code, pydantic and the codec cost alone.

`InMemoryBus` hands one subscription's records to its handler one after another (the real
subscription runs up to 64 runs at once), so with stores the floor's rate is bounded by
PostgreSQL and Redis round trips, not by CPU: its CPU per step is the figure to compare.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from loopline_bus import InMemoryBus, Outbound, RawRecord, SubscriptionOptions
from loopline_events import (
    CONTEXTS,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RESULTS,
    ContextAssembled,
    Envelope,
    decode_event,
)
from loopline_memory.adapters import migrations as memory_migrations
from loopline_memory.adapters.environment import load_environment
from loopline_memory.adapters.store import Pending, RunStore, StoredRun
from loopline_memory.domain.replay import MEMORY_INPUTS
from loopline_memory.handlers import MemoryHandler
from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.conversations import Conversations
from loopline_planner.adapters.models import ModelSettings, build_model
from loopline_planner.handlers import PlannerHandler
from loopline_runtime import load_profiles, open_schema
from loopline_tool_executor.adapters import migrations as executor_migrations
from loopline_tool_executor.adapters.ledger import ToolLedger
from loopline_tool_executor.handlers import ExecutorHandler
from loopline_tools import ToolRegistry

from bench._namespace import Namespace, infrastructure
from bench._proc import CpuWindow, Watched
from bench._sizes import goal, steps_per_run
from bench._steps import new_run_ids


class DictStore(RunStore):
    """`RunStore` over a dict: each run's state kept as the JSON memory writes to Redis."""

    def __init__(self) -> None:
        self.pool, self.schema, self.key_prefix = None, "", ""
        self.runs: dict[str, StoredRun] = {}

    async def load(self, run_id: str) -> StoredRun | None:
        return self.runs.get(run_id)

    async def save_many(self, pending: Sequence[Pending]) -> None:
        for p in pending:
            self.runs[p.stored.state.run_id] = p.stored


async def _no_log(run_id: str) -> list[ContextAssembled]:
    return []  # the planner sees every context of every run here


@dataclass
class Loop:
    """The three handlers subscribed on one in-memory bus; `close` releases their stores."""

    bus: InMemoryBus
    close: Callable[[], Awaitable[None]]

    async def finished(self, count: int) -> None:
        """Wait until agent.results holds `count` results."""
        async with self.bus.changed:
            await self.bus.changed.wait_for(lambda: len(self.bus.records(RESULTS.name)) >= count)

    def steps(self) -> int:
        """Durable steps so far: every decision and every tool result."""
        return len(self.bus.records(DECISIONS.name)) + len(self.bus.records(OBSERVATIONS.name))


async def wire(namespace: Namespace | None) -> Loop:
    """The loop; with `namespace`, its stores are the real ones in that namespace."""
    bus = InMemoryBus()
    await bus.start()
    closers: list[Callable[[], Awaitable[None]]] = []
    if namespace is None:
        store: RunStore = DictStore()
        cache, ledger = None, None
    else:
        endpoints = namespace.endpoints
        pool, schema = await open_schema(endpoints, "memory", memory_migrations.MIGRATIONS)
        redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
        store = RunStore(pool, redis, schema, namespace.prefix)
        url = endpoints.redis.url.get_secret_value()
        cache = ResponseCache(aioredis.from_url(url), namespace=namespace.prefix)
        ex_pool, ex_schema = await open_schema(
            endpoints, "executor", executor_migrations.MIGRATIONS
        )
        ledger = ToolLedger(ex_pool, ex_schema)
        closers += [redis.aclose, pool.close, ex_pool.close]
    planner = PlannerHandler(
        ModelSettings(), build_model, cache, conversations=Conversations(None, "", _no_log)
    )
    executor = ExecutorHandler(ToolRegistry.default(), load_profiles(), ledger=ledger)
    memory = MemoryHandler(store, load_environment(), write_behind=True)
    options = SubscriptionOptions(before_publish=memory.flush, on_reassigned=memory.forget)
    await bus.subscribe("memory", list(MEMORY_INPUTS), memory, options).start()
    await bus.subscribe("planner", [CONTEXTS.name], planner).start()
    await bus.subscribe("tool-executor", [DECISIONS.name], executor).start()

    async def close() -> None:
        await bus.stop()
        await planner.aclose()
        for closer in closers:
            await closer()

    return Loop(bus, close)


async def _submit(loop: Loop, run_ids: Sequence[str], iterations: int) -> None:
    events = [Envelope.of(goal(iterations), run_id=r, producer="bench") for r in run_ids]
    await loop.bus.publish_many([Outbound(GOALS.name, e) for e in events])


async def floor(
    namespace: Namespace | None, runs: int, iterations: int, latency_runs: int, latency_its: int
) -> dict[str, Any]:
    """Throughput, CPU per step and one-run-at-a-time step time of the in-process loop."""
    loop = await wire(namespace)
    try:
        await _submit(loop, new_run_ids(1, "warm-up"), 2)  # imports, connections, first calls
        await loop.finished(1)
        watched = [Watched("floor process", os.getpid())]
        if namespace is not None:
            watched += infrastructure(("redis", "postgres"))
        cpu = CpuWindow(watched)
        before_steps, before_results = loop.steps(), 1
        cpu.start()
        started = time.perf_counter()
        await _submit(loop, new_run_ids(runs, "floor"), iterations)
        await loop.finished(before_results + runs)
        window = time.perf_counter() - started
        cpu.stop()
        steps = loop.steps() - before_steps
        step_s = await _one_at_a_time(loop, before_results + runs, latency_runs, latency_its)
    finally:
        await loop.close()
    return {
        "stores": "PostgreSQL + Redis" if namespace is not None else "none (state in a dict)",
        "runs": runs,
        "iterations": iterations,
        "durable_steps": steps,
        "window_s": round(window, 3),
        "steps_per_s": round(steps / window, 1),
        "cpu": cpu.as_dict(steps),
        "one_run_at_a_time_ms_per_step": round(1000.0 * step_s, 3),
    }


async def _one_at_a_time(loop: Loop, results: int, runs: int, iterations: int) -> float:
    """Mean seconds per durable step of runs done one after another."""
    took = 0.0
    for i in range(runs):
        started = time.perf_counter()
        await _submit(loop, new_run_ids(1, "floor-latency"), iterations)
        await loop.finished(results + i + 1)
        took += time.perf_counter() - started
    return took / (runs * steps_per_run(iterations)) if runs else 0.0


async def record_run(iterations: int) -> tuple[list[RawRecord], list[RawRecord]]:
    """One run's records on memory's input topics, as the services write them, in order; and
    its contexts (which the inputs answer).

    Played through the in-process loop without stores: the bytes are what the services would
    publish, produced by their own handlers.
    """
    loop = await wire(None)
    try:
        await _submit(loop, new_run_ids(1, "template"), iterations)
        await loop.finished(1)
        records = [r for topic in MEMORY_INPUTS for r in loop.bus.records(topic)]
        contexts = loop.bus.records(CONTEXTS.name)
    finally:
        await loop.close()
    return sorted(records, key=lambda r: decode_event(r.value).occurred_at), contexts
