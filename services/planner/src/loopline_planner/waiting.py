"""Steps that wait for capacity outside their batch.

A batch's outputs are published and its offsets committed when every record of it is handled;
a model call waiting a minute for a rate limit would hold all the runs of its batch that long.
So a step whose wait is longer than a moment announces it (`ModelCallDelayed`, published at
once) and leaves its batch: its decision is published here when it comes.

The step's context is committed then, so a crash of this process loses the step: the run's
announced wait tells recovery's watchdog when to expect the decision, and past that (plus
the step timeout) it re-drives the context, which any replica decides. A graceful stop hands
the waiting steps back at once (their contexts published again, unchanged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from loopline_bus import Outbound
from loopline_events import CONTEXTS, Backoff, Envelope

log = logging.getLogger("loopline.planner.waiting")

PublishMany = Callable[[Sequence[Outbound]], Awaitable[None]]
Decide = Callable[[], Coroutine[Any, Any, list[Outbound]]]
PUBLISH_BACKOFF = Backoff(base_s=0.5, cap_s=10.0)


class Waiting:
    """The steps of this replica decided in the background, by (run, step)."""

    def __init__(self, publish: PublishMany):
        self.publish = publish
        self._steps: dict[tuple[str, int], tuple[Envelope[Any], asyncio.Task[None]]] = {}

    def holds(self, event: Envelope[Any]) -> bool:
        """Whether the step of `event` is being decided here in the background."""
        return (event.run_id, event.seq) in self._steps

    @property
    def count(self) -> int:
        """Steps waiting in the background."""
        return len(self._steps)

    async def run(
        self, event: Envelope[Any], decide: Decide, moved_out: asyncio.Future[None]
    ) -> Sequence[Outbound]:
        """`decide`'s outputs, for the batch to publish; or none, once `moved_out` is done:
        the step then goes on in the background and publishes its outputs itself."""
        task = asyncio.create_task(decide(), name=f"step-{event.run_id}-{event.seq}")
        try:
            pending: set[asyncio.Future[Any]] = {task, moved_out}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done():
            return task.result()
        key = (event.run_id, event.seq)
        follower = asyncio.create_task(self._finish(key, task), name=f"waiting-{key}")
        self._steps[key] = (event, follower)
        return ()

    async def _finish(self, key: tuple[str, int], task: asyncio.Task[list[Outbound]]) -> None:
        try:
            outputs = await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        except Exception:
            # A bug, not a model failure (those are outputs): the watchdog re-drives the step.
            log.exception("run %s step %d: deciding in the background failed", *key)
            self._steps.pop(key, None)
            return
        try:
            attempt = 0
            while True:
                attempt += 1
                try:
                    await self.publish(outputs)
                    break
                except Exception as exc:  # Kafka away for a moment: the decision is not lost
                    log.warning("run %s step %d: publishing failed, retrying: %r", *key, exc)
                    await asyncio.sleep(PUBLISH_BACKOFF.after(exc, attempt))
        finally:
            self._steps.pop(key, None)

    async def hand_back(self) -> None:
        """Stop deciding in the background; publish each step's context again, unchanged, for
        the next owner of its partition."""
        steps = list(self._steps.values())
        await self.cancel()
        for event, _ in steps:
            try:
                await self.publish([Outbound(CONTEXTS.name, event)])
            except Exception as exc:
                log.warning(
                    "run %s step %d: not handed back (%r); the watchdog will re-drive it",
                    event.run_id,
                    event.seq,
                    exc,
                )

    async def cancel(self) -> None:
        """Stop every step waiting here."""
        steps, self._steps = list(self._steps.values()), {}
        for _, task in steps:
            task.cancel()
        for _, task in steps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
