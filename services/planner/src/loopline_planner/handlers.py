"""The planner's use case: a context in, a decision (or a model failure) out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from loopline_bus import Outbound
from loopline_events import (
    DECISIONS,
    ContextAssembled,
    Envelope,
    Message,
    ModelDecided,
    ModelFailed,
    ToolCall,
    derived_id,
    request_messages,
    shown_messages,
)
from loopline_runtime import redact

from loopline_planner.adapters.artifacts import ArtifactTexts
from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.conversations import Conversations
from loopline_planner.adapters.models import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelRequest,
    ModelSettings,
    complete_with_retries,
)

PRODUCER = "planner"

log = logging.getLogger("loopline.planner")


def unguessable(calls: tuple[ToolCall, ...], context: Envelope[Any]) -> tuple[ToolCall, ...]:
    """The calls with ids no one can guess without the context they answer (a model's own
    may be as plain as `call_1_0`): a tool result naming one proves it answers this decision.
    The same on every redelivery of the context."""
    return tuple(
        call.model_copy(update={"call_id": f"call_{derived_id(context.event_id, 'call', i).hex}"})
        for i, call in enumerate(calls)
    )


class PlannerHandler:
    """Asks the context's model for a decision, with a timeout and retries.

    It holds each run's history (`Conversations`): a context carries only its new messages
    and the window of the history the request shows; the request is built from both, stored
    outputs read from the artifact store (`ArtifactTexts`).

    With a `cache`, a step's reply is recorded and a redelivered context is answered from it:
    the same decision, no second model call. With `write_behind`, the replies of a batch are
    recorded together by `flush()`, which the bus calls before publishing the batch.
    """

    def __init__(
        self,
        settings: ModelSettings,
        build: Callable[[str, ModelSettings], ModelAdapter],
        cache: ResponseCache | None = None,
        *,
        conversations: Conversations,
        artifacts: ArtifactTexts | None = None,
        write_behind: bool = False,
    ):
        self.settings = settings
        self._build = build
        self._models: dict[str, ModelAdapter] = {}
        self.cache = cache
        self.conversations = conversations
        self.artifacts = artifacts
        self.write_behind = write_behind

    def model(self, name: str) -> ModelAdapter:
        """The adapter for `name`, built once."""
        if name not in self._models:
            self._models[name] = self._build(name, self.settings)
        return self._models[name]

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        context = event.payload
        if not isinstance(context, ContextAssembled):
            return ()
        started = time.perf_counter()
        history = await self.conversations.extend(event.run_id, context)
        try:
            model = self.model(context.model)
            reply = await self._reply(event, model, context, history)
        except (ModelError, ValueError) as exc:
            log.warning(
                "run %s step %d: model failed: %s", event.run_id, event.seq, redact(str(exc))
            )
            failed = ModelFailed(
                model=context.model,
                error=redact(str(exc)),
                retryable=getattr(exc, "retryable", False),
                attempts=max(
                    1, self.settings.max_attempts if getattr(exc, "retryable", False) else 1
                ),
            )
            return [Outbound(DECISIONS.name, event.follow(failed, producer=PRODUCER))]
        decision = ModelDecided(
            agent=context.agent,
            model=model.name,
            tool_calls=unguessable(reply.tool_calls, event),
            final_answer=reply.final_answer,
            usage=reply.usage,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        return [Outbound(DECISIONS.name, event.follow(decision, producer=PRODUCER))]

    async def request(
        self, context: ContextAssembled, history: tuple[Message, ...]
    ) -> ModelRequest:
        """What the model is asked: the history through the context's window, stored outputs
        read; a summary request ends with its instruction and offers no tool."""
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
        tools = context.tools if context.purpose == "step" else ()
        return ModelRequest(context.agent, context.model, tuple(messages), tools)

    async def _reply(
        self,
        event: Envelope[Any],
        model: ModelAdapter,
        context: ContextAssembled,
        history: tuple[Message, ...],
    ) -> ModelReply:
        """The step's reply: recorded, or asked of the model and recorded."""
        if self.cache is not None:
            cached = await self.cache.get(event.run_id, event.seq)
            if cached is not None:
                log.info("run %s step %d: reply from cache", event.run_id, event.seq)
                return cached
        reply, _attempts = await complete_with_retries(
            model,
            await self.request(context, history),
            max_attempts=self.settings.max_attempts,
            timeout_s=self.settings.timeout_s,
        )
        if self.cache is not None:
            if self.write_behind:  # recorded by the batch's flush, before it is published
                self.cache.stage(event.run_id, event.seq, reply)
            else:
                await self.cache.put(event.run_id, event.seq, reply)
        return reply

    async def flush(self) -> None:
        """Record the replies and histories of a batch (with `write_behind`, the bus calls it
        per batch, before the batch's decisions are published)."""
        await self.conversations.flush()
        if self.cache is not None:
            await self.cache.flush()

    def forget(self) -> None:
        """Partitions moved: the runs held may be extended elsewhere now."""
        self.conversations.forget()

    async def aclose(self) -> None:
        """Close the model adapters and the cache."""
        for model in self._models.values():
            await model.aclose()
        if self.cache is not None:
            await self.cache.aclose()
