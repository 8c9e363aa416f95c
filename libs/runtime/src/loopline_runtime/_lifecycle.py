"""Running a service until it is asked to stop, then stopping it cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

Stop = Callable[[], Awaitable[None]]

READY_FILE_VARIABLE = "LOOPLINE_READY_FILE"
"""When set, a service writes this file once it consumes: how supervisors know it is up."""

log = logging.getLogger("loopline.lifecycle")


async def serve_until_signalled(name: str, start: Callable[[], Awaitable[Stop]]) -> None:
    """Start the service, run until SIGTERM or SIGINT, then await its stop function.

    The stop function finishes the batch in hand and commits it, so a deploy or a Ctrl-C loses
    nothing and repeats nothing.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    stop = await start()
    log.info("%s ready", name)
    ready_file = os.environ.get(READY_FILE_VARIABLE)
    if ready_file:
        Path(ready_file).write_text(f"{os.getpid()}\n")  # noqa: ASYNC240 - once, at start
    try:
        await stopping.wait()
    finally:
        log.info("%s stopping", name)
        await stop()
        log.info("%s stopped", name)
