"""Runs with held tool calls in memory's projection, for tests of what reads it (the CLI,
the SDK, the gateway) without an agent that waits for approval.

A run is written as memory writes it (its RunStore: PostgreSQL and the Redis hot copy), with
an `ApprovalRequested` as the event it consumed last, so memory's read API answers as it
would for a run the tool-executor held a call of.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from loopline_bus import read_history
from loopline_events import CONTROL, ApprovalRequested, Envelope, Keyring
from loopline_memory.adapters.migrations import MIGRATIONS
from loopline_memory.adapters.store import RunStore, StoredRun
from loopline_memory.domain import Phase, RunState, RunStatus
from loopline_memory.domain.state import DecidedCall, HeldCall
from loopline_runtime import Endpoints, KafkaSettings, local_credentials, open_schema


def held_call(
    call_id: str = "call-1",
    *,
    tool: str = "send_payment",
    arguments: dict[str, Any] | None = None,
    step: int = 1,
    approvers: Sequence[str] = (),
    on_timeout: str = "deny",
    waiting: timedelta = timedelta(minutes=5),
    until: timedelta = timedelta(hours=1),
) -> HeldCall:
    """A call held `waiting` ago, until `until` from now."""
    now = datetime.now(UTC)
    return HeldCall.model_validate(
        {
            "call_id": call_id,
            "tool": tool,
            "arguments": arguments if arguments is not None else {"to": "acct-7", "amount": 120},
            "effect": "side_effect",
            "policy": "effects: side_effect",
            "approvers": tuple(approvers),
            "until": now + until,
            "on_timeout": on_timeout,
            "step": step,
            "requested_at": now - waiting,
        }
    )


def decided_call(request: HeldCall, *, approved: bool, by: str, reason: str = "") -> DecidedCall:
    """`request`, decided a minute ago."""
    return DecidedCall(
        request=request,
        approved=approved,
        decided_by=by,
        reason=reason,
        decided_at=datetime.now(UTC) - timedelta(minutes=1),
    )


@dataclass
class HeldRuns:
    """Writes runs to memory's projection in a namespace."""

    store: RunStore
    pool: asyncpg.Pool
    redis: aioredis.Redis

    @classmethod
    async def open(cls, endpoints: Endpoints) -> HeldRuns:
        """On the namespace of `endpoints`' Kafka settings (memory's schema migrated)."""
        pool, schema = await open_schema(endpoints, "memory", MIGRATIONS, max_size=2)
        redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
        store = RunStore(pool, redis, schema, endpoints.kafka.topic_prefix)
        return cls(store, pool, redis)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.pool.close()

    async def run(
        self,
        *,
        tenant: str = "acme",
        status: RunStatus = RunStatus.RUNNING,
        held: Sequence[HeldCall] = (),
        decided: Sequence[DecidedCall] = (),
        run_id: str | None = None,
    ) -> str:
        """A run of `tenant` in `status`, holding `held` and having decided `decided`; its
        id."""
        run_id = run_id or f"run-{uuid.uuid4()}"
        now = datetime.now(UTC)
        step = max((h.step for h in (*held, *(d.request for d in decided))), default=1)
        state = RunState(
            run_id=run_id,
            tenant=tenant,
            agent="default",
            goal="Pay the invoice of acct-7",
            model="test-model",
            tools=("send_payment",),
            max_steps=10,
            deadline_at=None,
            started_at=now - timedelta(minutes=10),
            updated_at=now,
            status=status,
            phase=Phase.OBSERVATIONS if status is RunStatus.RUNNING else Phase.DONE,
            step=step,
            calls=tuple(h.call_id for h in held),
            held=tuple(held),
            decided=tuple(decided),
        )
        last = held[-1] if held else decided[-1].request if decided else held_call()
        consumed = Envelope.of(
            ApprovalRequested(
                call_id=last.call_id,
                tool=last.tool,
                arguments=last.arguments,
                effect=last.effect,
                policy=last.policy,
                approvers=last.approvers,
                until=last.until,
                on_timeout=last.on_timeout,
            ),
            run_id=run_id,
            tenant=tenant,
            producer="tool-executor",
            seq=step,
        )
        await self.store.save(StoredRun(state=state), consumed, ())
        return run_id


def session_keyring() -> Keyring:
    """Memory's keyring of the session's principals, as `loopline infra up` made them."""
    local = local_credentials()
    assert local is not None, "the tests run with the session's credentials file"
    return Keyring.of((local.signing_key(name), p.acts_for) for name, p in local.principals.items())


async def commands(settings: KafkaSettings, run_id: str) -> list[Envelope[Any]]:
    """Every command agent.control holds for `run_id`, up to its end now, oldest first."""
    return [r.event for r in await read_history(settings, [CONTROL.name], run_id)]
