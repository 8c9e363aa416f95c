"""Running a service until it is asked to stop, then stopping it cleanly.

Around the service, the lifecycle runs what every service process has: tracing (when the
OTEL_* variables ask for it) and one HTTP server for /metrics, /healthz and /readyz, and it
writes the ready file supervisors wait for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from loopline_runtime._health import PROCESS_HEALTH, Health, Phase
from loopline_runtime._http import HttpSettings, StatusServer
from loopline_runtime._loop_lag import watch_loop_lag
from loopline_runtime._tasks import stop_task
from loopline_runtime._tracing import configure_tracing

Stop = Callable[[], Awaitable[None]]

READY_FILE_VARIABLE = "LOOPLINE_READY_FILE"
"""When set, a service writes this file once it consumes: how supervisors know it is up."""

log = logging.getLogger("loopline.lifecycle")


@dataclass(frozen=True)
class ReadyInfo:
    """What a ready file says: the process, and where it serves HTTP."""

    pid: int
    http_port: int | None = None
    api_port: int | None = None
    """Where it serves an API of its own (the gateway's API and page), if it does."""


def write_ready_file(path: Path, info: ReadyInfo) -> None:
    """Write `info` as JSON, atomically: a reader never sees half a file."""
    partial = path.with_name(path.name + ".tmp")
    data = {"pid": info.pid, "http_port": info.http_port}
    if info.api_port is not None:
        data["api_port"] = info.api_port
    partial.write_text(json.dumps(data) + "\n")
    partial.replace(path)


def read_ready_file(path: Path) -> ReadyInfo | None:
    """The ready file's content (JSON, or the older plain pid); None if absent or unreadable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, int):  # the older form: the pid alone
        return ReadyInfo(pid=data)
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
        return None
    port, api = data.get("http_port"), data.get("api_port")
    return ReadyInfo(
        pid=data["pid"],
        http_port=port if isinstance(port, int) else None,
        api_port=api if isinstance(api, int) else None,
    )


async def serve_until_signalled(
    name: str,
    start: Callable[[], Awaitable[Stop]],
    *,
    http: HttpSettings | None = None,
    health: Health = PROCESS_HEALTH,
) -> None:
    """Start the service, run until SIGTERM or SIGINT, then await its stop function.

    /healthz answers from before the service starts; /readyz once it has started and every
    bus it started is ready, and no longer once it is stopping. The stop function finishes
    the batch in hand and commits it, so a deploy or a Ctrl-C loses nothing and repeats nothing.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    shutdown_tracing = configure_tracing(name)
    server = StatusServer(health, loop, http).start()
    lag = asyncio.create_task(watch_loop_lag(), name="event-loop-lag")
    try:
        stop = await start()
        health.phase = Phase.SERVING
        log.info("%s ready", name)
        ready_file = os.environ.get(READY_FILE_VARIABLE)
        if ready_file:
            info = ReadyInfo(os.getpid(), server.port, api_port=health.api_port)
            write_ready_file(Path(ready_file), info)
        try:
            await stopping.wait()
        finally:
            health.phase = Phase.STOPPING
            log.info("%s stopping", name)
            await stop()
            log.info("%s stopped", name)
    finally:
        await stop_task(lag, grace_s=0)
        server.close()
        if shutdown_tracing is not None:
            shutdown_tracing()
