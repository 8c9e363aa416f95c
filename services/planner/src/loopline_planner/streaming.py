"""Publishing a step's text while the model writes it, as `ModelTextDelta`s on agent.stream.

One `StepText` per step follows every call of the step: a retried call that writes what was
published already publishes nothing until it goes past it, and one that writes differently
publishes from the first character that differs (a lower `offset`), so a reader never shows
the same text twice. Pieces are gathered and published at most every `flush_s`. Publishing is
best effort: a delta that cannot be published is logged, and the step goes on; its text is in
the decision anyway.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from loopline_events import Envelope, ModelTextDelta

from loopline_planner.adapters.models import TextSink

log = logging.getLogger("loopline.planner.stream")

Publish = Callable[[Envelope[ModelTextDelta]], Awaitable[None]]
PRODUCER = "planner"


class StepText:
    """The streamed text of the step `cause` (its context) asks for."""

    def __init__(
        self,
        cause: Envelope[Any],
        publish: Publish,
        *,
        flush_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cause = cause
        self.publish = publish
        self.flush_s = flush_s
        self.clock = clock
        self.published = ""
        """The step's text as readers have it."""
        self._pieces: list[str] = []
        self._model = ""
        self._attempt = 0
        self._flushed_at = clock()

    def sink(self, model: str, attempt: int) -> TextSink:
        """Where call number `attempt` (of `model`) writes its text."""
        self._model, self._attempt, self._pieces = model, attempt, []

        async def write(piece: str) -> None:
            if attempt != self._attempt:
                return  # a call that was given up on (timed out) and still writes
            self._pieces.append(piece)
            if self.clock() - self._flushed_at >= self.flush_s:
                await self.flush()

        return write

    async def flush(self) -> None:
        """Publish what the current call wrote beyond what readers have."""
        self._flushed_at = self.clock()
        text = "".join(self._pieces)
        if self.published.startswith(text):
            return  # nothing new: a retry still repeating what was published
        offset = _common_prefix(self.published, text)
        delta = ModelTextDelta(
            model=self._model, attempt=self._attempt, offset=offset, text=text[offset:]
        )
        event = Envelope.of(
            delta,
            run_id=self.cause.run_id,
            producer=PRODUCER,
            seq=self.cause.seq,
            tenant=self.cause.tenant,
            causation_id=self.cause.event_id,
            trace=self.cause.trace,
            # The same delta of a repeated step (a redelivery) has the same id.
            event_id=uuid.uuid5(
                self.cause.event_id, f"{PRODUCER}/text/{self._attempt}/{offset}/{len(text)}"
            ),
        )
        try:
            await self.publish(event)
        except Exception as exc:  # streaming must never cost the step
            log.warning("run %s step %d: text not streamed: %r", event.run_id, event.seq, exc)
            return
        self.published = text


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
