"""The planner's use case: a context in, a decision (or a model failure) out.

A step is asked of its model through the shared limiter (`calls.Caller`), its text streamed
while the model writes (`streaming.StepText`), falling back to the profile's next model when
the model stays unavailable. A step whose call must wait longer than a moment for capacity
does not hold its batch: it is announced (`ModelCallDelayed`), and decided in the background
(`waiting.Waiting`), which publishes its decision itself. The profile's guards look at the
messages before the model is asked and at its decision before it is published
(`guarding`): a trip answers the context in the decision's place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from loopline_bus import Outbound
from loopline_events import (
    CONTROL,
    DECISIONS,
    STREAM,
    ContextAssembled,
    Envelope,
    FailRun,
    FailureReason,
    Message,
    ModelCallDelayed,
    ModelDecided,
    ModelFailed,
    ModelTextDelta,
    ToolCall,
    derived_id,
    request_messages,
    shown_messages,
    utcnow,
)
from loopline_runtime import AgentProfile, Guards, Tripped, load_guards, redact

from loopline_planner.adapters.artifacts import ArtifactTexts
from loopline_planner.adapters.cache import Recorded, ResponseCache
from loopline_planner.adapters.conversations import Conversations
from loopline_planner.adapters.limiter import (
    Gate,
    QuotaExceededError,
    Verdict,
    WaitedTooLongError,
)
from loopline_planner.adapters.models import (
    ModelAdapter,
    ModelError,
    ModelSettings,
    load_adapters,
)
from loopline_planner.calls import Caller, Decided
from loopline_planner.domain.requests import (
    ModelRequest,
    known_models,
    models_for,
    request_for,
)
from loopline_planner.guarding import guard_decision, guard_request
from loopline_planner.streaming import StepText
from loopline_planner.waiting import Waiting

PRODUCER = "planner"
OTHER_MODEL = "other"
"""The model a refusal names when the context's is unknown: metrics labelled by model stay
bounded whatever a context claims."""
SHOWN_CHARS = 200
"""How much of an unknown model's name a refusal quotes."""
REANNOUNCE_S = 1.0
"""A waiting step is announced again when its expected time moves later by more than this."""

log = logging.getLogger("loopline.planner")

PublishMany = Callable[[Sequence[Outbound]], Awaitable[None]]


def unguessable(calls: tuple[ToolCall, ...], context: Envelope[Any]) -> tuple[ToolCall, ...]:
    """The calls with ids no one can guess without the context they answer (a model's own
    may be as plain as `call_1_0`): a tool result naming one proves it answers this decision.
    The same on every redelivery of the context."""
    return tuple(
        call.model_copy(update={"call_id": f"call_{derived_id(context.event_id, 'call', i).hex}"})
        for i, call in enumerate(calls)
    )


class PlannerHandler:
    """Asks the context's model for a decision, through the limiter, with retries, streaming
    and fallback. With `profiles`, it calls only the models they name or the price table
    prices: a context naming another gets a `ModelFailed` of model `other`, and no provider
    is called.

    With a `cache`, a step's reply is recorded and a redelivered context is answered from it:
    the same decision, no second model call. With `write_behind`, the replies of a batch are
    recorded together by `flush()`, which the bus calls before publishing the batch. With
    `publish` (the bus's), text is streamed and waiting steps leave their batch; without it,
    every step is decided within its batch. `guards`: each profile's guards (by default,
    those its profile names, from the installed guards).
    """

    def __init__(
        self,
        settings: ModelSettings,
        build: Callable[[str, ModelSettings], ModelAdapter],
        cache: ResponseCache | None = None,
        *,
        write_behind: bool = False,
        gate: Gate | None = None,
        profiles: Mapping[str, AgentProfile] | None = None,
        publish: PublishMany | None = None,
        conversations: Conversations,
        artifacts: ArtifactTexts | None = None,
        guards: Mapping[str, Guards] | None = None,
    ):
        self.settings = settings
        self.conversations = conversations
        self.artifacts = artifacts
        self._build = build
        self._models: dict[str, ModelAdapter] = {}
        self.cache = cache
        self.write_behind = write_behind
        self.profiles = profiles or {}
        self.models = known_models(self.profiles) if self.profiles else None
        """The models it may call (None: any, for a handler given no profiles)."""
        self.guards = load_guards(self.profiles) if guards is None else guards
        self.publish = publish
        self.caller = Caller(settings, self.model, gate)
        self.waiting = Waiting(publish) if publish is not None else None

    def model(self, name: str) -> ModelAdapter:
        """The adapter for `name`, built once."""
        if name not in self._models:
            self._models[name] = self._build(name, self.settings)
        return self._models[name]

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        context = event.payload
        if not isinstance(context, ContextAssembled):
            return ()
        if self.models is not None and context.model not in self.models:
            return [self._unknown_model(event, context)]
        # The run's history, with what this context adds: every context extends it, even one
        # answered from the cache, so the next one finds it whole.
        history = await self.conversations.extend(event.run_id, context)
        if self.waiting is not None and self.waiting.holds(event):
            return ()  # a repeat of a step decided in the background: it publishes the decision
        if self.cache is not None:
            started = time.perf_counter()
            cached = await self.cache.get(event.run_id, event.seq)
            if cached is not None:
                log.info("run %s step %d: reply from cache", event.run_id, event.seq)
                decided = Decided(
                    cached.reply, cached.model or context.model, 0, cached.fallback_from
                )
                ms = (time.perf_counter() - started) * 1000
                return [await self._decision(event, context, decided, ms)]
        step = _Step(self, event, context, history)
        if self.waiting is None:
            return await step.decide()
        return await self.waiting.run(event, step.decide, step.moved_out)

    async def flush(self) -> None:
        """Record the replies and histories of a batch (with `write_behind`, the bus calls it
        per batch, before the batch's decisions are published)."""
        await self.conversations.flush()
        if self.cache is not None:
            await self.cache.flush()

    def forget(self) -> None:
        """Partitions moved: the runs held may be extended elsewhere now."""
        self.conversations.forget()

    async def request(
        self, event: Envelope[Any], context: ContextAssembled, history: tuple[Message, ...]
    ) -> ModelRequest:
        """What the model is asked: the history through the context's window, stored outputs
        read from the artifact store; a summary request ends with its instruction and offers
        no tool."""
        wanted: dict[str, int | None] = {}
        cuts = {c.index: c.chars for c in context.window.cuts} if context.window else {}
        for index, message in shown_messages(history, context.window):
            if message.artifact is not None:
                wanted[message.artifact.ref] = cuts.get(index) if index is not None else None
        if wanted and self.artifacts is None:
            raise ModelError("the planner has no artifact store to read outputs", retryable=False)
        texts = await self.artifacts.texts(wanted) if self.artifacts and wanted else {}
        messages = request_messages(history, context.window, texts)
        if context.instruction:
            messages.append(Message(role="user", content=context.instruction))
        return request_for(event, context, tuple(messages))

    async def hand_back(self) -> None:
        """Stopping: steps still waiting for capacity are published again to their context
        topic, unchanged, so the partition's next owner decides them."""
        if self.waiting is not None:
            await self.waiting.hand_back()

    async def aclose(self) -> None:
        """Close the model adapters and the cache."""
        if self.waiting is not None:
            await self.waiting.cancel()
        for model in self._models.values():
            await model.aclose()
        if self.cache is not None:
            await self.cache.aclose()

    def guards_of(self, agent: str) -> Guards:
        """The guards of `agent`'s profile (none for an agent without one)."""
        return self.guards.get(agent) or Guards()

    async def _decision(
        self, event: Envelope[Any], context: ContextAssembled, decided: Decided, ms: float
    ) -> Outbound:
        decision = ModelDecided(
            agent=context.agent,
            model=decided.model,
            tool_calls=unguessable(decided.reply.tool_calls, event),
            final_answer=decided.reply.final_answer,
            usage=decided.reply.usage,
            latency_ms=ms,
            fallback_from=decided.fallback_from,
        )
        answer = await guard_decision(self.guards_of(context.agent), event, context, decision)
        return Outbound(DECISIONS.name, event.follow(answer, producer=PRODUCER))

    def _unknown_model(self, event: Envelope[Any], context: ContextAssembled) -> Outbound:
        """A context naming a model this installation does not know: no provider is called
        for it (a forged context could otherwise spend any model of the account, unpriced, so
        past every cost budget), and the step fails saying why."""
        shown = context.model[:SHOWN_CHARS]
        log.warning("run %s step %d: unknown model %r", event.run_id, event.seq, shown)
        failed = ModelFailed(
            model=OTHER_MODEL,
            error=f"unknown model {shown!r}: no agent profile names it and the price table "
            "does not price it, so the planner calls no provider for it",
        )
        return Outbound(DECISIONS.name, event.follow(failed, producer=PRODUCER))

    async def _record(self, event: Envelope[Any], decided: Decided, *, staged: bool) -> None:
        if self.cache is None:
            return
        recorded = Recorded(decided.reply, decided.model, decided.fallback_from)
        if staged and self.write_behind:  # recorded by the batch's flush, before it is published
            self.cache.stage(event.run_id, event.seq, recorded)
        else:
            await self.cache.put(event.run_id, event.seq, recorded)


class _Step:
    """One step being decided: its calls, its streamed text, its announced waits."""

    def __init__(
        self,
        planner: PlannerHandler,
        event: Envelope[Any],
        context: ContextAssembled,
        history: tuple[Message, ...],
    ):
        self.planner, self.event, self.context = planner, event, context
        self.history = history
        self.profile = planner.profiles.get(context.agent)
        self.text: StepText | None = None
        if planner.publish is not None:
            self.text = StepText(event, self._publish_text, flush_s=planner.settings.stream_flush_s)
        self.detached = False
        self.moved_out: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the step leaves its batch to wait in the background."""
        self._waiting_since: float | None = None
        self._announced: float | None = None
        self._delays = 0

    async def decide(self) -> list[Outbound]:
        """The step's outputs: its decision (or the guard's trip standing for it), its model
        failure, or a quota's `FailRun`."""
        chain = models_for(self.context.model, self.profile)
        await load_adapters(chain)
        try:
            request = await self._request()
            if isinstance(request, Tripped):  # answers the context in the decision's place
                trip = self.event.follow(request.event(), producer=PRODUCER)
                return [Outbound(DECISIONS.name, trip)]
            decided = await self.planner.caller.decide(
                request,
                chain,
                pause_over_quota=self.profile is None or self.profile.on_quota == "pause",
                on_wait=self._on_wait,
                text_for=self.text.sink if self.text is not None else None,
                give_up_after_s=self.profile.deadline_s if self.profile is not None else None,
            )
        except WaitedTooLongError as exc:
            log.warning("run %s step %d: %s", self.event.run_id, self.event.seq, exc)
            return [self._failed(ModelError(str(exc), retryable=False))]
        except QuotaExceededError as exc:
            log.warning("run %s step %d: %s", self.event.run_id, self.event.seq, exc)
            return [self._over_quota(str(exc))]
        except ModelError as exc:
            log.warning(
                "run %s step %d: model failed: %s",
                self.event.run_id,
                self.event.seq,
                redact(str(exc)),
            )
            return [self._failed(exc)]
        if self.text is not None:
            await self.text.flush()  # the last of the text goes before the decision
        await self.planner._record(self.event, decided, staged=not self.detached)
        # How long the model took: its calls, not the waits for capacity between them.
        ms = decided.calling_s * 1000
        return [await self.planner._decision(self.event, self.context, decided, ms)]

    async def _request(self) -> ModelRequest | Tripped:
        """What the model is asked, as the profile's guards left it; or their trip."""
        request = await self.planner.request(self.event, self.context, self.history)
        guards = self.planner.guards_of(self.context.agent)
        return await guard_request(guards, self.event, self.context, request)

    async def _on_wait(self, verdict: Verdict) -> None:
        """The limiter says wait: within a moment, wait here; longer, leave the batch and say
        that the step waits (again, when the wait grows)."""
        if self.planner.publish is None:
            return  # no background here: every wait is waited within the batch
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        expected = now + verdict.expected_s
        inline = self.planner.settings.inline_wait_s
        if not self.detached and expected - self._waiting_since <= inline:
            return
        if self._announced is not None and expected <= self._announced + REANNOUNCE_S:
            return
        self._announced = expected
        assert verdict.reason is not None
        delayed = ModelCallDelayed(
            model=self.context.model,
            reason=verdict.reason,
            until=utcnow() + timedelta(seconds=verdict.expected_s),
            message=f"waiting for {verdict.reason.value.replace('_', ' ')}: about "
            f"{verdict.expected_s:.0f} s",
        )
        self._delays += 1
        out = Outbound(
            DECISIONS.name, self.event.follow(delayed, producer=PRODUCER, index=self._delays)
        )
        await self.planner.publish([out])
        if not self.detached:
            self.detached = True
            self.moved_out.set_result(None)

    async def _publish_text(self, event: Envelope[ModelTextDelta]) -> None:
        assert self.planner.publish is not None
        await self.planner.publish([Outbound(STREAM.name, event)])

    def _failed(self, exc: ModelError) -> Outbound:
        failed = ModelFailed(
            model=self.context.model,
            error=redact(str(exc)),
            retryable=exc.retryable,
            attempts=max(1, self.planner.settings.max_attempts if exc.retryable else 1),
        )
        return Outbound(DECISIONS.name, self.event.follow(failed, producer=PRODUCER))

    def _over_quota(self, message: str) -> Outbound:
        command = FailRun(
            reason=FailureReason.QUOTA_EXCEEDED,
            message=message,
            requested_by=PRODUCER,
            at_step=self.event.seq,
        )
        return Outbound(CONTROL.name, self.event.follow(command, producer=PRODUCER))
