"""`complete_with_retries`: one decision, with a timeout per attempt and backoff between them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loopline_planner.adapters.models._types import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelRequest,
)
from loopline_planner.domain.retry import retry_delay

Sleep = Callable[[float], Awaitable[object]]
"""How to wait between attempts: `asyncio.sleep`, or a fake in tests."""


async def complete_with_retries(
    model: ModelAdapter,
    request: ModelRequest,
    *,
    max_attempts: int,
    timeout_s: float,
    sleep: Sleep = asyncio.sleep,
) -> tuple[ModelReply, int]:
    """The model's reply and the attempts it took.

    Each attempt gets `timeout_s`; running over is a retryable `ModelError`. A retryable error
    is retried after an exponential, fully jittered wait (or the server's Retry-After), up to
    `max_attempts` attempts in all; the last error is raised when they run out, and any
    non-retryable one at once.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    attempt = 1
    while True:
        try:
            return await _attempt(model, request, timeout_s), attempt
        except ModelError as exc:
            if not exc.retryable or attempt >= max_attempts:
                raise
            await sleep(retry_delay(attempt, retry_after_s=exc.retry_after_s))
        attempt += 1


async def _attempt(model: ModelAdapter, request: ModelRequest, timeout_s: float) -> ModelReply:
    try:
        async with asyncio.timeout(timeout_s):
            return await model.complete(request)
    except TimeoutError:
        raise ModelError(f"timed out after {timeout_s:g}s", retryable=True) from None
