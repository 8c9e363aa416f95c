"""The planner's model-response cache in Redis, keyed by (namespace, run, step).

A context is redelivered after a crash or a rebalance, and memory re-publishes its outbox; the
cache makes the second delivery cost nothing: the recorded reply is decided again, with the same
tool call ids, so the executor's ledger recognises the calls as the ones it already ran.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from loopline_events import TokenUsage, ToolCall

from loopline_planner.adapters.models import ModelReply

log = logging.getLogger("loopline.planner.cache")

WEEK_S = 7 * 24 * 3600
"""How long a reply is kept: as long as agent.contexts keeps the contexts it answers."""


@dataclass(frozen=True)
class Recorded:
    """A step's reply as recorded: the reply, the model that gave it, and the model asked
    first when that was another one (a fallback answered)."""

    reply: ModelReply
    model: str
    fallback_from: str | None = None


class ResponseCache:
    """Model replies by (run, step) in Redis; a broken Redis degrades to no cache."""

    def __init__(self, redis: aioredis.Redis, namespace: str = "", ttl_s: int = WEEK_S):
        self.redis = redis
        self.namespace = namespace
        self.ttl_s = ttl_s
        self._staged: dict[str, str] = {}

    def key(self, run_id: str, seq: int) -> str:
        """The Redis key of a step's reply; the namespace first, so a namespace's keys drop
        together."""
        return f"{self.namespace}planner:reply:{run_id}:{seq}"

    async def get(self, run_id: str, seq: int) -> Recorded | None:
        """The recorded reply of the step, if any (None as well when Redis cannot answer:
        paying for a call twice beats stalling every run on a cache)."""
        staged = self._staged.get(self.key(run_id, seq))
        if staged is not None:
            return _decode(staged)
        try:
            raw = await self.redis.get(self.key(run_id, seq))
        except Exception as exc:
            log.warning("response cache unreadable, calling the model: %r", exc)
            return None
        return None if raw is None else _decode(raw)

    async def put(self, run_id: str, seq: int, recorded: Recorded) -> None:
        """Record the step's reply (the first one wins: a racing replica keeps its ids)."""
        try:
            await self.redis.set(self.key(run_id, seq), _encode(recorded), ex=self.ttl_s, nx=True)
        except Exception as exc:
            log.warning("response cache unwritable; a redelivery will call again: %r", exc)

    def stage(self, run_id: str, seq: int, recorded: Recorded) -> None:
        """Record the step's reply at the next `flush()`: the planner flushes once per batch,
        before the batch's decisions are published, so a decision is never out before its
        reply is recorded (or found unrecordable)."""
        self._staged.setdefault(self.key(run_id, seq), _encode(recorded))

    async def flush(self) -> None:
        """Record every staged reply in one round trip (the first one of a step wins)."""
        staged, self._staged = self._staged, {}
        if not staged:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value in staged.items():
                    pipe.set(key, value, ex=self.ttl_s, nx=True)
                await pipe.execute()
        except Exception as exc:
            log.warning("response cache unwritable; a redelivery will call again: %r", exc)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()


def _encode(recorded: Recorded) -> str:
    reply = recorded.reply
    return json.dumps(
        {
            "tool_calls": [c.model_dump(mode="json") for c in reply.tool_calls],
            "final_answer": reply.final_answer,
            "usage": reply.usage.model_dump(mode="json"),
            "model": recorded.model,
            "fallback_from": recorded.fallback_from,
        }
    )


def _decode(raw: bytes | str) -> Recorded:
    data: dict[str, Any] = json.loads(raw)
    reply = ModelReply(
        tool_calls=tuple(ToolCall.model_validate(c) for c in data["tool_calls"]),
        final_answer=data["final_answer"],
        usage=TokenUsage.model_validate(data["usage"]),
    )
    # Replies recorded before the model was: the context's model decided them.
    return Recorded(reply, data.get("model") or "", data.get("fallback_from"))
