"""Stopping a background task for certain.

A task asked to stop (an event it watches) gets a grace period to finish what it is doing;
then it is cancelled, again and again until it is done. Once is not always enough: on Python
3.11, `asyncio.wait_for` (used inside redis-py, aiokafka and others) drops a cancellation that
arrives just as the awaited call completes (CPython gh-86296), and a task cancelled once in
that instant carries on as if nothing had happened.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("loopline.lifecycle")

CANCEL_EVERY_S = 0.1


async def stop_task(task: asyncio.Task[Any], *, grace_s: float = 5.0) -> None:
    """Wait up to `grace_s` for `task` to end by itself, then cancel it until it ends.

    Its own exception, if any, is logged, not raised: a stop must finish.
    """
    if grace_s > 0:
        await asyncio.wait([task], timeout=grace_s)
        if not task.done():
            log.warning(
                "task %s did not stop within %.1f s; cancelling it", task.get_name(), grace_s
            )
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=CANCEL_EVERY_S)
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())
