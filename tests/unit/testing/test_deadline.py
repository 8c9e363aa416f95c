"""A coroutine test that hangs is cancelled inside its loop: it fails with where it waited,
and what it opened is released by its own `finally` and its fixtures."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from loopline_testing._deadline import with_deadline


async def test_a_hung_test_fails_with_its_awaits_and_runs_its_cleanup() -> None:
    released: list[str] = []

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            released.append("connection")

    with pytest.raises(pytest.fail.Exception) as failed:
        await with_deadline(hangs, 0.2)()
    assert released == ["connection"]
    assert "past its deadline of 0.2 s" in str(failed.value)
    assert "in hangs" in str(failed.value)
    assert "locks.py" in str(failed.value)  # down to the Event it waited on
    this = asyncio.current_task()
    assert this is not None
    assert this.cancelling() == 0


async def test_a_cancellation_swallowed_once_is_repeated() -> None:
    async def swallows_one() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # as asyncio.wait_for can on 3.11
            await asyncio.sleep(10)
        await asyncio.sleep(10)

    with pytest.raises(pytest.fail.Exception):
        await asyncio.wait_for(with_deadline(swallows_one, 0.1)(), 5)


async def test_a_test_within_its_deadline_and_its_own_timeouts_are_untouched() -> None:
    async def quick() -> int:
        return 7

    async def times_out() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)

    assert await with_deadline(quick, 5)() == 7
    with pytest.raises(TimeoutError):
        await with_deadline(times_out, 5)()
