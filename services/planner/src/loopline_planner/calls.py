"""How a step's model call is made: capacity first (the shared limiter), then the call with
its timeout, retries with backoff, and the profile's fallback models when the model stays
unavailable.

A call the provider refuses for load (429, 529) holds every replica's calls of that model for
the time it asked (or a backoff) and is tried again through the limiter, without counting
towards `max_attempts`: capacity is waited for, not failed on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from loopline_events import Backoff
from loopline_runtime import price_of

from loopline_planner.adapters import metrics
from loopline_planner.adapters.limiter import Ask, Gate, OnWait
from loopline_planner.adapters.models import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelRequest,
    ModelSettings,
    TextSink,
)
from loopline_planner.domain.requests import estimated_tokens

log = logging.getLogger("loopline.planner")

Sleep = Callable[[float], Awaitable[object]]
"""How to wait between attempts: `asyncio.sleep`, or a fake in tests."""
TextFor = Callable[[str, int], TextSink | None]
"""The sink of the text of a call: by model id and attempt (from 1, every call of the step)."""
MODEL_BACKOFF = Backoff(base_s=0.5, cap_s=30.0)


@dataclass(frozen=True)
class Decided:
    """A step's reply, who gave it, and what it took."""

    reply: ModelReply
    model: str
    """The model id that answered."""
    attempts: int
    """Calls made for the step, all models together."""
    fallback_from: str | None = None
    """The step's own model, when a fallback answered."""
    calling_s: float = field(default=0.0, compare=False)
    """Time spent in model calls, every try's (not in waits for capacity or backoff)."""


class Caller:
    """Makes a step's model calls: through `gate` (when given), with `settings`' timeout,
    retries and backoff, across the models of a fallback chain."""

    def __init__(
        self,
        settings: ModelSettings,
        model: Callable[[str], ModelAdapter],
        gate: Gate | None = None,
        *,
        backoff: Backoff = MODEL_BACKOFF,
        sleep: Sleep = asyncio.sleep,
    ):
        self.settings = settings
        self.model = model
        self.gate = gate
        self.backoff = backoff
        self.sleep = sleep

    async def decide(
        self,
        request: ModelRequest,
        chain: Sequence[str],
        *,
        pause_over_quota: bool = True,
        on_wait: OnWait | None = None,
        text_for: TextFor | None = None,
        give_up_after_s: float | None = None,
    ) -> Decided:
        """The first reply along `chain`: the next model is asked only when the one before
        failed with a retryable error after its retries (it is unavailable); any other
        error is raised at once, as is the last model's."""
        calls = _Calls()
        for position, name in enumerate(chain):
            try:
                model = self.model(name)
            except ValueError as exc:
                raise ModelError(str(exc), retryable=False) from exc
            try:
                reply = await self._with_retries(
                    model,
                    request.to(name),
                    calls,
                    _Waits(pause_over_quota, on_wait, give_up_after_s),
                    text_for,
                )
            except ModelError as exc:
                if not exc.retryable or position == len(chain) - 1:
                    raise
                metrics.fell_back(name)
                log.warning(
                    "run %s step %d: %s unavailable (%s); asking %s",
                    request.run_id,
                    request.step,
                    name,
                    exc,
                    chain[position + 1],
                )
                continue
            return Decided(
                reply, model.name, calls.made, chain[0] if position else None, calls.calling_s
            )
        raise AssertionError("a chain has at least one model")  # pragma: no cover

    async def _with_retries(
        self,
        model: ModelAdapter,
        request: ModelRequest,
        calls: _Calls,
        waits: _Waits,
        text_for: TextFor | None,
    ) -> ModelReply:
        """`model`'s reply; the last error when its retries run out."""
        failures = refusals = 0
        tokens = estimated_tokens(request) + self.settings.output_tokens_estimate
        while True:
            calls.made += 1
            ask = Ask(
                f"{request.run_id}:{request.step}:{uuid.uuid4().hex}",
                request.tenant,
                model.name,
                tokens,
            )
            if self.gate is not None:
                await self.gate.admit(
                    ask,
                    pause_over_quota=waits.pause_over_quota,
                    on_wait=waits.on_wait or _no_wait,
                    give_up_after_s=waits.give_up_after_s,
                )
            started = time.perf_counter()
            error: ModelError | None = None
            try:
                reply = await self._once(
                    model, request, text_for(model.name, calls.made) if text_for else None
                )
            except ModelError as exc:
                error = exc
            finally:
                calls.calling_s += time.perf_counter() - started
            if error is None:
                if self.gate is not None:
                    await self.gate.settle(ask, reply.usage, price_of(model.name).of(reply.usage))
                return reply
            if error.rate_limited and error.retryable:
                metrics.rate_limited(model.name)
                refusals += 1
                wait = self.backoff.after(error, refusals)
                if refusals <= self.settings.rate_limited_attempts:
                    if self.gate is not None:
                        await self.gate.hold(model.name, wait)  # the limiter does the waiting
                    else:
                        await self.sleep(wait)
                    continue
            failures += 1
            if not error.retryable or failures >= self.settings.max_attempts:
                raise error
            await self.sleep(self.backoff.after(error, failures))

    async def _once(
        self, model: ModelAdapter, request: ModelRequest, on_text: TextSink | None
    ) -> ModelReply:
        timeout_s = self.settings.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                return await model.complete(request, on_text)
        except TimeoutError:
            raise ModelError(f"timed out after {timeout_s:g}s", retryable=True) from None


@dataclass(frozen=True)
class _Waits:
    """How a step waits for capacity."""

    pause_over_quota: bool
    on_wait: OnWait | None
    give_up_after_s: float | None


@dataclass
class _Calls:
    made: int = 0
    """Calls made for the step so far, every model's."""
    calling_s: float = 0.0
    """Time spent in them."""


async def _no_wait(verdict: object) -> None:
    """Waits go unannounced."""
