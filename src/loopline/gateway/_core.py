"""What the gateway does for its clients, whatever they speak (the JSON API or the page).

It reads the services' projections through their read APIs (memory's runs and timelines,
recovery's dead letters) and acts by publishing events as its own Kafka client: goals, cancels
and forks of runs of the tenant its key is bound to; redrive commands that recovery carries
out. It writes no table but its own (API keys, the runs it submitted).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from loopline_bus import KafkaBus
from loopline_events import (
    ANY_TENANT,
    CONTROL,
    GOALS,
    ApprovalDecided,
    Budget,
    Envelope,
    Payload,
    RunSteered,
)
from loopline_memory import reads
from loopline_memory.history import Replay, Rerun, replay_run, rerun_run
from loopline_recovery import dead_letters
from loopline_runtime import AgentProfile

from loopline.gateway._feed import RunFeed
from loopline.gateway._follow import RunStream, open_stream
from loopline.gateway._keys import KeyStore, Principal
from loopline.gateway._settings import GatewaySettings
from loopline.sdk import (
    CommandRefusedError,
    Decider,
    cancel_event,
    check_decision,
    check_steering,
    command_event,
    decision,
    fork_run,
    goal_event,
)

T = TypeVar("T")
P = TypeVar("P", bound=Payload)

PRODUCER = "gateway"
IDEMPOTENT_RUNS = uuid.UUID("0d9a3c55-8f0e-4b7a-9d38-52a4c1e7b604")


class NotFoundError(LookupError):
    """No such run, or not one this principal may see (both read the same: 404)."""


class RefusedError(Exception):
    """What was asked is not allowed or not possible; the message says why, `status` the
    HTTP status that answers it (400 unless said)."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


@dataclass(frozen=True)
class Schemas:
    """The namespace's schemas the gateway reads (memory, recovery) and its own."""

    gateway: str
    memory: str
    recovery: str


class Gateway:
    """The gateway's use cases, over its stores, its bus and its feed."""

    def __init__(
        self,
        *,
        settings: GatewaySettings,
        pool: asyncpg.Pool,
        schemas: Schemas,
        bus: KafkaBus,
        feed: RunFeed,
        keys: KeyStore,
        profiles: Mapping[str, AgentProfile],
    ):
        self.settings, self.pool, self.schemas = settings, pool, schemas
        self.bus, self.feed, self.keys, self.profiles = bus, feed, keys, profiles

    # --- reads ------------------------------------------------------------------------

    async def memory(self, read: Callable[[asyncpg.Connection, str], Awaitable[T]]) -> T:
        """What one of memory's read API functions answers."""
        async with self.pool.acquire() as conn:
            return await read(conn, self.schemas.memory)

    async def recovery(self, read: Callable[[asyncpg.Connection, str], Awaitable[T]]) -> T:
        """What one of recovery's dead-letter API functions answers."""
        async with self.pool.acquire() as conn:
            return await read(conn, self.schemas.recovery)

    async def visible_run(self, principal: Principal, run_id: str) -> str:
        """The run's tenant, if `principal` may see the run; NotFoundError otherwise."""
        if not 0 < len(run_id) <= 128:
            raise NotFoundError(run_id)
        tenant = await self._submitted_tenant(run_id)
        if tenant is None:
            tenant = await self.memory(lambda c, s: reads.tenant_of(c, s, run_id))
        if tenant is None or not principal.may_see(tenant):
            raise NotFoundError(run_id)
        return tenant

    async def _submitted_tenant(self, run_id: str) -> str | None:
        value = await self.pool.fetchval(
            f'SELECT tenant FROM "{self.schemas.gateway}".submitted WHERE run_id = $1', run_id
        )
        return str(value) if value is not None else None

    async def submitted_at(self, run_id: str) -> datetime | None:
        value = await self.pool.fetchval(
            f'SELECT submitted_at FROM "{self.schemas.gateway}".submitted WHERE run_id = $1',
            run_id,
        )
        return value if isinstance(value, datetime) else None

    async def run(self, principal: Principal, run_id: str) -> dict[str, Any]:
        """The run's state, outcome and usage (`submitted` while memory has not started it)."""
        tenant = await self.visible_run(principal, run_id)
        head = await self.memory(lambda c, s: reads.summary(c, s, run_id))
        if head is None:
            return {"run_id": run_id, "tenant": tenant, "status": "submitted"}
        return summary_json(head)

    async def replay(self, principal: Principal, run_id: str, at_step: int | None) -> Replay:
        await self.visible_run(principal, run_id)
        return await replay_run(self.bus.settings, run_id, at_step=at_step)

    async def rerun(self, principal: Principal, run_id: str) -> Rerun:
        await self.visible_run(principal, run_id)
        return await rerun_run(self.bus.settings, run_id)

    async def stream(
        self, principal: Principal, run_id: str, resume: tuple[int, ...] | None
    ) -> RunStream:
        """The run's event stream, from its start or from `resume` (a cursor)."""
        await self.visible_run(principal, run_id)
        first = await self.memory(lambda c, s: reads.first_recorded(c, s, run_id))
        submitted = await self.submitted_at(run_id)
        known = [t for t in (first, submitted) if t is not None]
        return await open_stream(
            self.feed,
            run_id,
            first_seen=min(known) if known else None,
            resume=resume,
            clock_skew_s=self.settings.clock_skew_s,
            keepalive_s=self.settings.keepalive_s,
        )

    # --- acts -------------------------------------------------------------------------

    async def submit(
        self,
        principal: Principal,
        goal: str,
        *,
        agent: str,
        budget: Budget | None,
        metadata: Mapping[str, str],
        idempotency_key: str | None = None,
    ) -> str:
        """Start a run as the key's tenant; its id. The same idempotency key of the same key
        names the same run (and the same event): asking twice starts it once."""
        if agent not in self.profiles:
            known = ", ".join(sorted(self.profiles))
            raise RefusedError(f"unknown agent {agent!r} (known: {known})")
        event_id = None
        if idempotency_key is not None:
            name = f"{principal.key_id}/{idempotency_key}"
            run_id = str(uuid.uuid5(IDEMPOTENT_RUNS, name))
            event_id = uuid.uuid5(IDEMPOTENT_RUNS, name + "/goal")
        else:
            run_id = str(uuid.uuid4())
        event = goal_event(
            goal,
            run_id=run_id,
            agent=agent,
            tenant=principal.tenant,  # the key's, whatever the request said
            budget=budget,
            metadata=metadata,
            producer=PRODUCER,
            event_id=event_id,
        )
        await self._record(run_id, principal, "goal")
        await self.bus.publish(GOALS.name, event)
        return run_id

    async def cancel(self, principal: Principal, run_id: str, reason: str) -> None:
        tenant = await self.visible_run(principal, run_id)
        command = cancel_event(run_id, reason=reason, tenant=tenant, producer=PRODUCER)
        await self.bus.publish(CONTROL.name, command)

    async def fork(
        self,
        principal: Principal,
        run_id: str,
        *,
        from_step: int,
        agent: str | None,
        model: str | None,
        system_prompt: str | None,
    ) -> str:
        """A new run from the first `from_step` steps of `run_id`, in the same tenant."""
        tenant = await self.visible_run(principal, run_id)
        if agent is not None and agent not in self.profiles:
            raise RefusedError(f"unknown agent {agent!r}")
        child = str(uuid.uuid4())
        await self._record(child, principal, "fork", tenant=tenant, parent=run_id)
        await fork_run(
            self.bus,
            run_id,
            from_step=from_step,
            agent=agent,
            model=model,
            system_prompt=system_prompt,
            new_run_id=child,
            producer=PRODUCER,
        )
        return child

    # --- people in the loop (docs/decisions/0028) ---------------------------------------

    async def approvals(self, principal: Principal, tenant: str | None) -> list[reads.Approval]:
        """Held calls waiting for a decision: the key's tenant's (an operator's: every
        tenant's, or `tenant`'s), the longest waiting first."""
        if tenant is not None and not principal.may_see(tenant):
            raise RefusedError("a user key lists its own tenant's calls only", status=403)
        scope = tenant if principal.is_operator else principal.tenant
        return await self.memory(lambda c, s: reads.pending_approvals(c, s, tenant=scope))

    async def approval(self, principal: Principal, run_id: str, call_id: str) -> reads.Approval:
        """The held call `call_id` of a run the principal may see, pending or decided."""
        await self.visible_run(principal, run_id)
        found = await self.memory(lambda c, s: reads.approval(c, s, run_id, call_id))
        if found is None:
            raise RefusedError(f"no held call {call_id} in run {run_id}", status=404)
        return found

    async def decide(
        self,
        principal: Principal,
        run_id: str,
        call_id: str,
        *,
        approved: bool,
        arguments: Mapping[str, Any] | None,
        reason: str,
    ) -> Envelope[ApprovalDecided]:
        """Answer a held call of a run the principal may see, if it is pending and the key
        may decide it (its id among the call's approvers, or an operator's, when the policy
        names approvers); the command sent. The gateway signs as itself: it checks who may."""
        await self.visible_run(principal, run_id)
        command = decision(
            call_id,
            approved=approved,
            arguments=arguments,
            reason=reason,
            decided_by=f"{PRODUCER}:{principal.key_id}",
        )

        async def held(
            conn: asyncpg.Connection, schema: str
        ) -> tuple[reads.Approval | None, reads.RunRow | None]:
            found = await reads.approval(conn, schema, run_id, call_id)
            if found is not None:
                return found, None
            head = await reads.summary(conn, schema, run_id)
            return None, head.row if head else None

        found, run = await self.memory(held)
        if found is None and run is None:  # the gateway took its goal; memory has not yet
            raise RefusedError(f"no held call {call_id} in run {run_id}", status=404)
        with _refusals():
            checked = check_decision(run_id, call_id, found, run, _decider(principal))
        return await self._command(command_event(run_id, command, tenant=checked.tenant))

    async def steer(
        self, principal: Principal, run_id: str, message: str, *, sent_by: str = ""
    ) -> Envelope[RunSteered]:
        """Tell the agent of a running run the principal may see something; the command
        sent."""
        await self.visible_run(principal, run_id)
        command = RunSteered(message=message, sent_by=sent_by or f"{PRODUCER}:{principal.key_id}")
        head = await self.memory(lambda c, s: reads.summary(c, s, run_id))
        if head is None:
            raise RefusedError(
                f"run {run_id} has not started yet (memory has not taken its goal)", status=409
            )
        with _refusals():
            run = check_steering(run_id, head.row, _decider(principal))
        return await self._command(command_event(run_id, command, tenant=run.tenant))

    async def _command(self, event: Envelope[P]) -> Envelope[P]:
        event = event.model_copy(update={"producer": PRODUCER})
        key = self.bus.signing_key
        signed = key.sign(event) if key is not None else event  # as the bus signs it
        await self.bus.publish(CONTROL.name, signed)
        return signed

    async def redrive(self, principal: Principal, letter_id: str) -> int:
        """Ask recovery to redrive the parked dead letter `letter_id`; how many were asked."""
        found = await self.recovery(lambda c, s: dead_letters.find(c, s, letter_id))
        exact = [d for d in found if str(d.row.event_id) == letter_id.lower()]
        if not exact:
            raise NotFoundError(letter_id)
        letter = exact[0].row
        if letter.status != "parked":
            raise RefusedError(f"dead letter {letter_id} is {letter.status}, not parked")
        await dead_letters.request_redrive(
            self.bus, [letter], requested_by=f"{PRODUCER}:{principal.key_id}"
        )
        return 1

    async def _record(
        self,
        run_id: str,
        principal: Principal,
        kind: str,
        *,
        tenant: str | None = None,
        parent: str | None = None,
    ) -> None:
        await self.pool.execute(
            f'INSERT INTO "{self.schemas.gateway}".submitted '
            "(run_id, tenant, key_id, kind, parent_run_id) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (run_id) DO NOTHING",
            run_id,
            tenant or principal.tenant,
            principal.key_id,
            kind,
            parent,
        )


REFUSED_STATUS = {
    "no_run": 404,
    "other_tenant": 404,
    "never_held": 404,
    "not_started": 409,
    "decided": 409,
    "run_ended": 409,
    "not_approver": 403,
}
"""The HTTP status of each reason a command is refused for."""


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A command memory would refuse, as the gateway answers it."""
    try:
        yield
    except CommandRefusedError as exc:
        raise RefusedError(str(exc), status=REFUSED_STATUS[exc.why]) from None


def _decider(principal: Principal) -> Decider:
    """An API key, as a decider: an operator's acts for every tenant, a user's for its own."""
    return Decider(
        principal.key_id, frozenset({ANY_TENANT if principal.is_operator else principal.tenant})
    )


def summary_json(head: reads.RunSummary) -> dict[str, Any]:
    """A run's summary as the API shows it."""
    r = head.row
    outcome: dict[str, Any] | None = None
    if r.status == "completed":
        outcome = {"answer": r.answer}
    elif r.status in ("failed", "cancelled"):
        outcome = {"reason": r.reason, "message": head.message}
    return {
        "run_id": r.run_id,
        "tenant": r.tenant,
        "agent": r.agent,
        "model": head.model,
        "status": r.status,
        "goal": r.goal,
        "steps": r.steps,
        "outcome": outcome,
        "usage": {
            "prompt_tokens": head.prompt_tokens,
            "completion_tokens": head.completion_tokens,
            "total_tokens": head.prompt_tokens + head.completion_tokens,
            "cost_usd": head.cost_usd,
        },
        "limits": head.limits,
        "capped": list(head.capped),
        "started_at": r.started_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
    }
