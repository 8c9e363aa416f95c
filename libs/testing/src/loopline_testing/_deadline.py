"""A deadline inside the test's own event loop, shorter than pytest-timeout's.

pytest-timeout ends a stuck test from a signal handler: the loop stops where it stands, and
whatever the test opened (consumers, pools, sockets) is left for the garbage collector,
whose ResourceWarnings then fail whichever test runs next. A coroutine test here is instead
cancelled inside its loop a little earlier, so it fails with the stacks of every task that
was still waiting (where it hung), and its fixtures tear down as after any failure.
pytest-timeout stays the backstop for a loop that no longer turns at all.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

MARGIN = 0.2
"""Share of the pytest-timeout left for fixtures' setup and teardown."""


def deadline_of(item: pytest.Item) -> float | None:
    """The test body's deadline in seconds: its pytest-timeout less the margin."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        timeout = float(marker.args[0])
    elif marker is not None and "timeout" in marker.kwargs:
        timeout = float(marker.kwargs["timeout"])
    else:
        configured = item.config.getini("timeout") if _has_timeout_ini(item) else None
        timeout = float(configured) if configured else 0.0
    return timeout * (1 - MARGIN) if timeout > 0 else None


def _has_timeout_ini(item: pytest.Item) -> bool:
    try:
        item.config.getini("timeout")
    except ValueError:
        return False
    return True


def with_deadline(
    test: Callable[..., Awaitable[Any]], seconds: float
) -> Callable[..., Awaitable[Any]]:
    """`test`, failing with every pending task's stack if it runs longer than `seconds`."""

    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        stacks: list[str] = []
        timer: list[asyncio.TimerHandle] = []

        def expire() -> None:
            if not stacks:  # where everything waited, before the cancellation unwinds it
                stacks.append(_pending_stacks())
            task.cancel()
            # Again until it ends: a cancellation can be swallowed (3.11's wait_for).
            timer.append(loop.call_later(1.0, expire))

        timer.append(loop.call_later(seconds, expire))
        try:
            return await test(*args, **kwargs)
        except asyncio.CancelledError:
            if not stacks:
                raise
        finally:
            timer[-1].cancel()
        while task.uncancel():
            pass
        pytest.fail(
            f"the test ran past its deadline of {seconds:g} s and was cancelled; "
            f"the tasks pending then:\n{stacks[0]}",
            pytrace=False,
        )

    return bounded


def _pending_stacks() -> str:
    """Each pending task's chain of awaits, outermost first."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"task {task.get_name()}:", file=out)
        awaiting: Any = task.get_coro()
        while awaiting is not None:
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "gi_frame", None)
            if frame is not None:
                code = frame.f_code
                print(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}", file=out)
            awaiting = getattr(awaiting, "cr_await", None) or getattr(
                awaiting, "gi_yieldfrom", None
            )
    return out.getvalue()


def bound_coroutine_tests(items: list[pytest.Item]) -> None:
    """Give every coroutine test its deadline."""
    for item in items:
        function = getattr(item, "obj", None)
        if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(function):
            continue
        seconds = deadline_of(item)
        if seconds is not None:
            item.obj = with_deadline(function, seconds)
