"""The Python SDK: submit goals, follow their steps, await their results."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any
from uuid import UUID

from loopline_bus import EventStream, KafkaBus, Progress, start_trace
from loopline_events import (
    CONTROL,
    GOALS,
    Budget,
    CancelRun,
    Envelope,
    GoalRejected,
    GoalSubmitted,
    RunCancelled,
    RunCompleted,
    RunFailed,
)
from loopline_memory.domain.replay import Replay
from loopline_memory.history import Rerun, replay_run, rerun_run
from loopline_runtime import KafkaSettings, load_endpoints

from loopline.sdk._fork import fork_run

RESULT_TYPES = (RunCompleted, RunFailed, RunCancelled)


class Run:
    """A submitted run: iterate its steps as they happen, or await its result."""

    def __init__(self, run_id: str, stream: EventStream, goal_id: UUID | None = None):
        self.run_id = run_id
        self.goal_id = goal_id
        """The event that started it: a `GoalRejected` naming it is this run's answer."""
        self._stream = stream
        self._result: Envelope[Any] | None = None

    @property
    def outcome(self) -> Envelope[Any] | None:
        """The run's last event (RunCompleted, RunFailed, RunCancelled, or GoalRejected when
        its goal was not taken) once seen."""
        return self._result

    async def steps(self) -> AsyncIterator[Envelope[Any]]:
        """Each event of the run as it happens, ending with its result."""
        if self._result is not None:
            yield self._result
            return
        try:
            async for event in self._stream.events(self.run_id):
                if isinstance(event.payload, GoalRejected):
                    if event.causation_id != self.goal_id:
                        continue  # another goal's answer, for the same run id
                    yield event
                    self._result = event
                    return
                yield event
                if isinstance(event.payload, RESULT_TYPES):
                    self._result = event
                    return
        finally:
            await self._stream.stop()

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

    def __init__(self, settings: KafkaSettings | None = None, *, producer: str = "sdk"):
        self.settings = settings or load_endpoints().kafka
        self._bus = KafkaBus(settings=self.settings, client_id=producer)
        self._producer = producer

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
        await self._bus.stop()

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
        stream = EventStream(self.settings)
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
        return Run(run_id, stream, event.event_id)

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
        stream = EventStream(self.settings)
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
        return Run(child, stream, started.event_id)

    async def cancel(self, run_id: str, *, reason: str = "", tenant: str = "default") -> None:
        """Ask for a run to stop at its next step."""
        await self._bus.publish(
            CONTROL.name,
            cancel_event(run_id, reason=reason, tenant=tenant, producer=self._producer),
        )
