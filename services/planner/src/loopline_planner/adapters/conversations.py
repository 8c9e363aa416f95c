"""Runs' histories as the planner holds them: in this process for the runs of its partitions,
in Redis for when it restarts or its partitions move, and in the log as the last resort.

Redis holds each run's history as a list of messages (JSON), extended once per batch before
the batch's decisions are published; a context seen again trims the list back to its base
first, so a retried batch leaves it as it was. When neither this process nor Redis holds
what a context builds on, the run's contexts are read again from agent.contexts.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis
from loopline_events import ContextAssembled, HistoryGapError, Message, extended
from pydantic import TypeAdapter

log = logging.getLogger("loopline.planner.conversations")

HELD_RUNS = 10_000
"""Runs whose history a planner keeps in its process."""
TTL_S = 7 * 24 * 3600
"""How long Redis keeps a run's history after its last step."""

_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)

FromLog = Callable[[str], Awaitable[Sequence[ContextAssembled]]]
"""Reads a run's contexts from the log, in order."""


class Conversations:
    """Each run's history: extended by every context, rebuilt when a context finds a gap."""

    def __init__(self, redis: aioredis.Redis | None, namespace: str, from_log: FromLog):
        self.redis, self.namespace, self.from_log = redis, namespace, from_log
        self._held: OrderedDict[str, tuple[Message, ...]] = OrderedDict()
        self._staged: dict[str, tuple[int, tuple[Message, ...]]] = {}
        """Run → (base, messages): what the next flush writes to Redis."""

    def key(self, run_id: str) -> str:
        return f"{self.namespace}planner:history:{run_id}"

    async def extend(self, run_id: str, context: ContextAssembled) -> tuple[Message, ...]:
        """The run's history with `context`'s messages (staged for Redis)."""
        held = self._held.get(run_id)
        try:
            history = extended(held if held is not None else (), context)
        except HistoryGapError:
            history = extended(await self._rebuild(run_id, context), context)
        self._hold(run_id, history)
        if context.appended or len(history) != len(held or ()):
            base, _ = self._staged.get(run_id, (context.base, ()))
            start = min(base, context.base)
            self._staged[run_id] = (start, history[start:])
        return history

    async def _rebuild(self, run_id: str, context: ContextAssembled) -> tuple[Message, ...]:
        """What the context builds on: from Redis, else from the log."""
        stored: list[bytes | str] = []
        try:
            if self.redis is not None:
                stored = await self.redis.lrange(self.key(run_id), 0, -1)
        except Exception as exc:
            log.warning("run %s: history unreadable in Redis (%r); reading the log", run_id, exc)
        history = tuple(_MESSAGE.validate_json(item) for item in stored)
        if len(history) >= context.base:
            return history
        log.info("run %s: rebuilding its history from the log", run_id)
        rebuilt: tuple[Message, ...] = ()
        for earlier in await self.from_log(run_id):
            if earlier.base <= len(rebuilt):
                rebuilt = extended(rebuilt, earlier)
            if len(rebuilt) >= context.base:
                break
        if len(rebuilt) < context.base:
            raise HistoryGapError(
                f"run {run_id}: the log holds {len(rebuilt)} messages of its history; "
                f"the context builds on {context.base}"
            )
        return rebuilt[: context.base]

    def _hold(self, run_id: str, history: tuple[Message, ...]) -> None:
        self._held[run_id] = history
        self._held.move_to_end(run_id)
        if len(self._held) > HELD_RUNS:
            self._held.popitem(last=False)

    async def flush(self) -> None:
        """Write the staged histories to Redis, in one round trip."""
        staged, self._staged = self._staged, {}
        if not staged or self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for run_id, (base, messages) in staged.items():
                    key = self.key(run_id)
                    pipe.ltrim(key, 0, base - 1)
                    if messages:
                        pipe.rpush(key, *(_MESSAGE.dump_json(m) for m in messages))
                    pipe.expire(key, TTL_S)
                await pipe.execute()
        except Exception as exc:
            # This process still holds them; should it lose them, the log has them.
            log.warning("histories unwritable in Redis (%r); the log stays their source", exc)

    def forget(self) -> None:
        """Drop what the process holds (partitions moved: another planner may extend them)."""
        self._held.clear()
        self._staged.clear()
