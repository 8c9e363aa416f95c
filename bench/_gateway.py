"""The gateway: runs submitted over HTTP, each followed by its own Server-Sent Events client
to its end, and the gateway's CPU per event it streamed.

The four services and the gateway run as processes in a namespace of their own; `runs`
clients each submit a goal (`Count to N` with the demo model) and follow its stream at once.
The gateway's CPU (its process, from /proc) over the window, divided by the events it sent,
is its cost per streamed event: decoding the run's records it follows, skipping the others
on the key, rendering each event as an SSE message, HTTP.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from loopline_infra import GATEWAY, SERVICES
from loopline_testing.gateway import client, follow

from bench._namespace import Home, Namespace, System
from bench._proc import CpuWindow, Watched
from bench._progress import say
from bench._sizes import goal
from loopline.gateway.main import open_keys


async def gateway(ns: Namespace, home: Home, runs: int, iterations: int) -> dict[str, Any]:
    """Submit `runs` goals through the gateway and follow each over SSE to its end."""
    system = System(ns, home, folder="gateway", env={"LOOPLINE_GATEWAY_PORT": "0"})
    say("gateway: starting the four services and the gateway")
    system.up(names=(*SERVICES, GATEWAY))
    try:
        status = {s.name: s for s in system.services.status()}[GATEWAY]
        assert status.api_url is not None, "the gateway serves no API"
        assert status.pid is not None
        store, close = await open_keys(ns.endpoints)
        try:
            _, key = await store.create("bench")
        finally:
            await close()
        limits = httpx.Limits(max_connections=runs + 10, max_keepalive_connections=runs + 10)
        async with client(status.api_url, key, limits=limits) as http:
            await _one(http, 2)  # warm-up: connections, imports, caches
            say(f"gateway: {runs} runs of {iterations} calculator calls, one SSE client each")
            window = CpuWindow([Watched(GATEWAY, status.pid)])
            window.start()
            started = time.monotonic()
            counts = await asyncio.gather(*(_one(http, iterations) for _ in range(runs)))
            wall = time.monotonic() - started
            window.stop()
    finally:
        system.down()
    events = sum(c for c, _ in counts)
    ended = sum(1 for _, end in counts if end == "RunCompleted")
    cpu_s = window.seconds[GATEWAY]
    return {
        "runs": runs,
        "clients": runs,
        "runs_completed": ended,
        "events_streamed": events,
        "wall_s": round(wall, 2),
        "gateway_cpu_s": round(cpu_s, 3),
        "gateway_us_per_event": round(1e6 * cpu_s / events, 1) if events else None,
        "gateway_kernel_share": round(window.system_seconds[GATEWAY] / cpu_s, 2) if cpu_s else 0,
    }


async def _one(http: httpx.AsyncClient, iterations: int) -> tuple[int, str]:
    """Submit one goal and follow its stream to its end: (events received, the last type)."""
    asked = goal(iterations)
    body = {"goal": asked.goal, "agent": asked.agent, "budget": asked.budget.model_dump()}
    accepted = await http.post("/v1/runs", json=body)
    accepted.raise_for_status()
    events = await follow(http, accepted.json()["run_id"])
    return len(events), events[-1].json()["type"] if events else ""
