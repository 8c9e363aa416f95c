"""The planner's use case: a context in, a decision (or a model failure) out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from loopline_bus import Outbound
from loopline_events import DECISIONS, ContextAssembled, Envelope, ModelDecided, ModelFailed

from loopline_planner.adapters.cache import ResponseCache
from loopline_planner.adapters.models import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelSettings,
    complete_with_retries,
)

PRODUCER = "planner"

log = logging.getLogger("loopline.planner")


class PlannerHandler:
    """Asks the context's model for a decision, with a timeout and retries.

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
        write_behind: bool = False,
    ):
        self.settings = settings
        self._build = build
        self._models: dict[str, ModelAdapter] = {}
        self.cache = cache
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
        try:
            model = self.model(context.model)
            reply = await self._reply(event, model, context)
        except (ModelError, ValueError) as exc:
            log.warning("run %s step %d: model failed: %s", event.run_id, event.seq, exc)
            failed = ModelFailed(
                model=context.model,
                error=str(exc),
                retryable=getattr(exc, "retryable", False),
                attempts=max(
                    1, self.settings.max_attempts if getattr(exc, "retryable", False) else 1
                ),
            )
            return [Outbound(DECISIONS.name, event.follow(failed, producer=PRODUCER))]
        decision = ModelDecided(
            agent=context.agent,
            model=model.name,
            tool_calls=reply.tool_calls,
            final_answer=reply.final_answer,
            usage=reply.usage,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        return [Outbound(DECISIONS.name, event.follow(decision, producer=PRODUCER))]

    async def _reply(
        self, event: Envelope[Any], model: ModelAdapter, context: ContextAssembled
    ) -> ModelReply:
        """The step's reply: recorded, or asked of the model and recorded."""
        if self.cache is not None:
            cached = await self.cache.get(event.run_id, event.seq)
            if cached is not None:
                log.info("run %s step %d: reply from cache", event.run_id, event.seq)
                return cached
        reply, _attempts = await complete_with_retries(
            model,
            context,
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
        """Record the replies of a batch (with `write_behind`, the bus calls it per batch)."""
        if self.cache is not None:
            await self.cache.flush()

    async def aclose(self) -> None:
        """Close the model adapters and the cache."""
        for model in self._models.values():
            await model.aclose()
        if self.cache is not None:
            await self.cache.aclose()
