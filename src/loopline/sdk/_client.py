"""The Python SDK: submit goals, follow their steps, await their results."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

import asyncpg
from loopline_bus import RUN_TOPICS, EventStream, KafkaBus, Progress, start_trace
from loopline_events import (
    CONTROL,
    GOALS,
    STREAM,
    ApprovalDecided,
    Budget,
    CancelRun,
    Envelope,
    GoalRejected,
    GoalSubmitted,
    ModelTextDelta,
    Payload,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunSteered,
    SigningKey,
    StreamedText,
    TextChunk,
)
from loopline_memory import reads
from loopline_memory.domain.replay import Replay
from loopline_memory.history import Rerun, replay_run, rerun_run
from loopline_runtime import (
    KafkaSettings,
    PostgresSettings,
    load_endpoints,
    load_signing,
    local_credentials,
)

from loopline.sdk._fork import fork_run
from loopline.sdk._humans import Decider, check_decision, check_steering, command_event, decision
from loopline.sdk._reads import MemoryReads

P = TypeVar("P", bound=Payload)

RESULT_TYPES = (RunCompleted, RunFailed, RunCancelled)
FOLLOWED_TOPICS = (*RUN_TOPICS, STREAM.name)
"""What a client follows of a run: its steps and its end, and the text its model writes."""


class Run:
    """A submitted run: iterate its steps, or the text its model writes, as they happen; or
    await its result."""

    def __init__(
        self,
        run_id: str,
        stream: EventStream,
        goal_id: UUID | None = None,
        on_close: Callable[[Run], None] | None = None,
    ):
        self.run_id = run_id
        self.goal_id = goal_id
        """The event that started it: a `GoalRejected` naming it is this run's answer."""
        self._stream = stream
        self._result: Envelope[Any] | None = None
        self._closed = False
        self._on_close = on_close

    async def close(self) -> None:
        """Stop following the run (its connections to Kafka close). Done by itself once the
        run's end is seen, and for every run still followed when its client is left."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._stream.stop()
        finally:
            if self._on_close is not None:
                self._on_close(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def outcome(self) -> Envelope[Any] | None:
        """The run's last event (RunCompleted, RunFailed, RunCancelled, or GoalRejected when
        its goal was not taken) once seen."""
        return self._result

    async def steps(self) -> AsyncIterator[Envelope[Any]]:
        """Each event of the run as it happens, ending with its result."""
        async for item in self.follow():
            if isinstance(item, Envelope):
                yield item

    async def stream(self) -> AsyncIterator[TextChunk]:
        """The text the run's model writes, as it writes it, step by step, until the run ends.

        A chunk follows the step's text shown so far; a call the planner retried never shows
        its text twice (a retry that writes differently comes as a chunk with `rewrite` set).
        """
        async for item in self.follow():
            if isinstance(item, TextChunk):
                yield item

    async def follow(self) -> AsyncIterator[Envelope[Any] | TextChunk]:
        """Both, in the order they come: the run's events and its model's text."""
        if self._result is not None:
            yield self._result
            return
        text = StreamedText()
        try:
            async for event in self._stream.events(self.run_id):
                if isinstance(event.payload, GoalRejected):
                    if event.causation_id != self.goal_id:
                        continue  # another goal's answer, for the same run id
                    yield event
                    self._result = event
                    return
                if isinstance(event.payload, ModelTextDelta):
                    chunk = text.add(event)
                    if chunk is not None:
                        yield chunk
                    continue
                yield event
                if isinstance(event.payload, RESULT_TYPES):
                    self._result = event
                    return
        finally:
            await self.close()

    async def result(self, timeout: float | None = None) -> Envelope[Any]:
        """Wait for the run's end (RunCompleted, RunFailed or RunCancelled), or the rejection
        of its goal (GoalRejected)."""

        async def drain() -> Envelope[Any]:
            async for _ in self.steps():
                pass
            assert self._result is not None
            return self._result

        return await asyncio.wait_for(drain(), timeout)


def goal_event(
    goal: str,
    *,
    run_id: str,
    agent: str = "default",
    tenant: str = "default",
    budget: Budget | None = None,
    metadata: Mapping[str, str] | None = None,
    producer: str = "sdk",
    event_id: uuid.UUID | None = None,
) -> Envelope[GoalSubmitted]:
    """The event that starts a run: publish it to agent.goals, keyed by `run_id`."""
    payload = GoalSubmitted(
        goal=goal, agent=agent, budget=budget or Budget(), metadata=dict(metadata or {})
    )
    # The run's trace starts here: every event of the run carries it (as a span of the
    # application's own trace when it configured OpenTelemetry).
    return Envelope.of(
        payload,
        run_id=run_id,
        tenant=tenant,
        producer=producer,
        trace=start_trace("submit goal"),
        event_id=event_id,
    )


def cancel_event(
    run_id: str, *, reason: str = "", tenant: str = "default", producer: str = "sdk"
) -> Envelope[CancelRun]:
    """The command asking a run to stop: publish it to agent.control, keyed by `run_id`."""
    command = CancelRun(reason=reason, requested_by=producer)
    return Envelope.of(command, run_id=run_id, tenant=tenant, producer=producer)


class Loopline:
    """A client of a Loopline system: `async with Loopline() as client: ...`."""

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        producer: str = "sdk",
        signing_key: SigningKey | None = None,
        postgres: PostgresSettings | None = None,
    ):
        """Connect with `settings` (else LOOPLINE_KAFKA_*, or this machine's operator); goals
        and commands are signed with `signing_key` (else LOOPLINE_SIGNING_KEY_ID and
        LOOPLINE_SIGNING_KEY, or this machine's operator's key). Approvals and messages to
        runs read memory's projections on PostgreSQL at `postgres` (else
        LOOPLINE_POSTGRES_DSN, or this machine's operator's), when first used."""
        self.settings = settings or load_endpoints().kafka
        key = signing_key or load_signing().signing_key()
        self._bus = KafkaBus(settings=self.settings, client_id=producer, signing_key=key)
        self._runs: set[Run] = set()
        self._key = key
        self._producer = producer
        self._postgres = postgres
        self._memory: MemoryReads | None = None

    async def __aenter__(self) -> Loopline:
        await self._bus.ensure_topics()
        await self._bus.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Runs still followed (their results never awaited, a wait given up): their streams
        # close with the client, not whenever the collector gets to them.
        try:
            for run in list(self._runs):
                await run.close()
        finally:
            await self._bus.stop()

    def _followed(self, run_id: str, stream: EventStream, goal_id: UUID | None = None) -> Run:
        run = Run(run_id, stream, goal_id, on_close=self._runs.discard)
        self._runs.add(run)
        return run

    async def submit(
        self,
        goal: str,
        *,
        agent: str = "default",
        tenant: str = "default",
        run_id: str | None = None,
        budget: Budget | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Run:
        """Submit a goal; the returned run sees every event from this moment on."""
        run_id = run_id or str(uuid.uuid4())
        stream = EventStream(self.settings, FOLLOWED_TOPICS)
        await stream.start(run_id)
        event = goal_event(
            goal,
            agent=agent,
            tenant=tenant,
            run_id=run_id,
            budget=budget,
            metadata=metadata,
            producer=self._producer,
        )
        try:
            await self._bus.publish(GOALS.name, event)
        except BaseException:
            await stream.stop()
            raise
        return self._followed(run_id, stream, event.event_id)

    async def run(self, run_id: str) -> Run:
        """A run already started (a sub-task, say): it sees the run's events from its start,
        so `result()` answers whether it has ended or not."""
        stream = EventStream(self.settings, FOLLOWED_TOPICS)
        await stream.start(run_id, from_beginning=True)
        return self._followed(run_id, stream)

    async def replay(
        self, run_id: str, *, at_step: int | None = None, progress: Progress | None = None
    ) -> Replay:
        """The run's state rebuilt from the log (at step `at_step`, when given)."""
        return await replay_run(self.settings, run_id, at_step=at_step, progress=progress)

    async def rerun(self, run_id: str) -> Rerun:
        """Re-run from the recorded decisions and tool results; report divergences."""
        return await rerun_run(self.settings, run_id)

    async def fork(
        self,
        run_id: str,
        *,
        from_step: int,
        agent: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> Run:
        """A new run with `run_id`'s first `from_step` steps, copied; it goes on live."""
        child = str(uuid.uuid4())
        stream = EventStream(self.settings, FOLLOWED_TOPICS)
        await stream.start(child)
        try:
            started = await fork_run(
                self._bus,
                run_id,
                from_step=from_step,
                agent=agent,
                model=model,
                system_prompt=system_prompt,
                new_run_id=child,
                producer=self._producer,
            )
        except BaseException:
            await stream.stop()
            raise
        return self._followed(child, stream, started.event_id)

    async def cancel(self, run_id: str, *, reason: str = "", tenant: str = "default") -> None:
        """Ask for a run to stop at its next step."""
        await self._bus.publish(
            CONTROL.name,
            cancel_event(run_id, reason=reason, tenant=tenant, producer=self._producer),
        )

    # --- people in the loop (docs/decisions/0028) ---------------------------------------

    @property
    def memory(self) -> MemoryReads:
        """Memory's read API, on the namespace this client's topics are in."""
        if self._memory is None:
            postgres = self._postgres or load_endpoints().postgres
            self._memory = MemoryReads(postgres, self.settings.topic_prefix)
        return self._memory

    @property
    def decider(self) -> Decider:
        """Who this client's decisions and messages are from: its signing key, and the
        tenants it acts for when this machine's credentials file says."""
        if self._key is None:
            return Decider("")
        local = local_credentials()
        known = local.principals.get(self._key.key_id) if local is not None else None
        if known is None or local is None or local.signing_key(self._key.key_id) != self._key:
            return Decider(self._key.key_id)
        return Decider(self._key.key_id, frozenset(known.acts_for))

    async def approvals(
        self, tenant: str | None = None, *, limit: int = 100
    ) -> list[reads.Approval]:
        """Held calls waiting for a decision (of `tenant`'s runs, when given), the longest
        waiting first (the first `limit`)."""
        return await self.memory(
            lambda c, s: reads.pending_approvals(c, s, tenant=tenant, limit=limit)
        )

    async def approval(self, run_id: str, call_id: str) -> reads.Approval | None:
        """The held call `call_id` of `run_id`, pending or decided (who, when, why); None if
        it never was held."""
        return await self.memory(lambda c, s: reads.approval(c, s, run_id, call_id))

    async def approve(
        self,
        run_id: str,
        call_id: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        reason: str = "",
        decided_by: str = "",
    ) -> Envelope[ApprovalDecided]:
        """Let a held call run (with `arguments` instead of the model's, when given): the
        command sent. CommandRefusedError, with nothing sent, when it is not pending (never
        held, decided already, its run ended), or this client's key may not decide it."""
        return await self._decide(run_id, call_id, True, arguments, reason, decided_by)

    async def deny(
        self, run_id: str, call_id: str, *, reason: str, decided_by: str = ""
    ) -> Envelope[ApprovalDecided]:
        """Refuse a held call: it never runs, the model is told `reason`. The command sent;
        CommandRefusedError, with nothing sent, as for `approve`."""
        return await self._decide(run_id, call_id, False, None, reason, decided_by)

    async def say(self, run_id: str, message: str, *, sent_by: str = "") -> Envelope[RunSteered]:
        """Tell a running agent something: memory adds `message` to the run's history as a
        user's, and the model reads it at its next step. The command sent;
        CommandRefusedError, with nothing sent, when memory knows no such run, it ended, or
        this client's key does not act for its tenant."""
        decider = self.decider
        command = RunSteered(message=message, sent_by=sent_by or decider.key_id)
        head = await self.memory(lambda c, s: reads.summary(c, s, run_id))
        run = check_steering(run_id, head.row if head else None, decider)
        return await self._command(command_event(run_id, command, tenant=run.tenant))

    async def _decide(
        self,
        run_id: str,
        call_id: str,
        approved: bool,
        arguments: Mapping[str, Any] | None,
        reason: str,
        decided_by: str,
    ) -> Envelope[ApprovalDecided]:
        decider = self.decider
        command = decision(  # a field that does not fit is refused before anything is read
            call_id,
            approved=approved,
            arguments=arguments,
            reason=reason,
            decided_by=decided_by or decider.key_id,
        )

        async def held(
            conn: asyncpg.Connection, schema: str
        ) -> tuple[reads.Approval | None, reads.RunRow | None]:
            found = await reads.approval(conn, schema, run_id, call_id)
            if found is not None:
                return found, None
            head = await reads.summary(conn, schema, run_id)
            return None, head.row if head else None

        found = check_decision(run_id, call_id, *await self.memory(held), decider)
        return await self._command(command_event(run_id, command, tenant=found.tenant))

    async def _command(self, event: Envelope[P]) -> Envelope[P]:
        """Publish a command to agent.control (signed as the bus signs it); the event sent."""
        event = event.model_copy(update={"producer": self._producer})
        signed = self._key.sign(event) if self._key is not None else event
        await self._bus.publish(CONTROL.name, signed)
        return signed
