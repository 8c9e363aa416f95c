"""The watchdog's table in Redis: one hash per partition, one field per active run.

By partition, because partitions are what moves between recovery instances: the one given a
partition loads its hash, and the one losing it simply forgets it. A watch is a short JSON
array; a batch's changes go in one pipelined round trip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from loopline_events import FailureReason
from redis.typing import EncodableT, FieldT

from loopline_recovery.domain import Held, Kind, Location, Watch


def encode(watch: Watch) -> str:
    """A watch as stored (compact, positional). Held calls come last, and only when there
    are any: a watch without is stored as before them."""
    pending = watch.pending
    held = [[h.call_id, h.until, h.on_timeout, h.expired] for h in watch.held]
    return json.dumps(
        [
            watch.tenant,
            watch.step_timeout_s,
            watch.deadline_at,
            watch.seq,
            int(watch.kind),
            list(watch.observed),
            [pending.topic, pending.partition, pending.offset] if pending else None,
            watch.progress_at,
            watch.due_at,
            watch.tries,
            watch.failing.value if watch.failing else None,
            *([held] if held else []),
        ],
        separators=(",", ":"),
    )


def decode(run_id: str, text: str | bytes) -> Watch:
    """The watch `encode` stored for `run_id`: fields it does not know (stored by a later
    version) are left aside."""
    fields: list[Any] = json.loads(text)
    known, later = fields[:11], fields[11:]
    tenant, timeout, deadline, seq, kind, observed, pending, progress, due, tries, fail = known
    held = later[0] if later else []
    return Watch(
        run_id=run_id,
        tenant=tenant,
        step_timeout_s=timeout,
        deadline_at=deadline,
        seq=seq,
        kind=Kind(kind),
        observed=tuple(observed),
        pending=Location(*pending) if pending else None,
        progress_at=progress,
        due_at=due,
        tries=tries,
        failing=FailureReason(fail) if fail else None,
        held=tuple(Held(c, until, on_timeout, expired) for c, until, on_timeout, expired in held),
    )


class WatchTable:
    """Watches by partition, in Redis under the namespace's prefix."""

    def __init__(self, redis: aioredis.Redis, namespace: str):
        self.redis = redis
        self.prefix = f"{namespace}loopline:watchdog:"

    def _key(self, partition: int) -> str:
        return f"{self.prefix}{partition}"

    async def load(self, partition: int) -> dict[str, Watch]:
        """Every watch of a partition."""
        stored = await self.redis.hgetall(self._key(partition))
        return {_text(run): decode(_text(run), text) for run, text in stored.items()}

    async def save(self, changed: Mapping[int, Mapping[str, Watch | None]]) -> None:
        """Write changed watches (None: the run ended) by partition, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        queued = False
        for partition, runs in changed.items():
            ended = [run for run, w in runs.items() if w is None]
            kept: dict[FieldT, EncodableT] = {
                run: encode(w) for run, w in runs.items() if w is not None
            }
            if ended:
                pipe.hdel(self._key(partition), *ended)
                queued = True
            if kept:
                pipe.hset(self._key(partition), mapping=kept)
                queued = True
        if queued:
            await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
