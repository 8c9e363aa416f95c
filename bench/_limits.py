"""What the shared rate limiter and the tenant quotas cost per model call.

Every model call asks the limiter once before (rates, fairness, the tenant's quota windows,
the provider's hold: one script in Redis) and settles once after (token correction, quota
counts: another). The part drives the planner's own `Gate` through that round, `calls` times
with `concurrency` calls in flight and two tenants, against a private `redis-server` started
for it (so that its CPU is the limiter's alone), with limits high enough that no call waits:
the cost of asking, not of waiting. Twice: rates only, then rates and quotas.

The alternative the design names for the quota windows, faust-streaming, is measured by
`bench._faust` on the same footing (CPU per model call).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
from loopline_events import TokenUsage
from loopline_planner.adapters.limiter import Ask, Gate, RedisLimiter, Verdict
from loopline_runtime import parse_limits

from bench._proc import CpuWindow, Watched
from bench._progress import say

MODEL = "anthropic:claude-sonnet-4-5"
RATES = f"""
[providers.anthropic]
requests_per_minute = 10000000
tokens_per_minute = 1000000000000
burst = 100000
[models."{MODEL}"]
requests_per_minute = 10000000
tokens_per_minute = 1000000000000
burst = 100000
[tenants."*"]
requests_per_minute = 10000000
tokens_per_minute = 1000000000000
burst = 100000
"""
QUOTAS = """tokens_per_hour = 1000000000000
tokens_per_day = 1000000000000
cost_usd_per_hour = 1000000
cost_usd_per_day = 1000000
"""
USAGE = TokenUsage(prompt_tokens=1200, completion_tokens=80, cached_tokens=900)


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[str, int]]:
    """A redis-server of its own on a free port, no persistence: (URL, pid)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make infra-up installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


async def _never_waits(verdict: Verdict) -> None:
    raise AssertionError(f"a call waited ({verdict}): the limits are meant never to hold")


async def _round(gate: Gate, tenant: str) -> None:
    """One model call's business with the limiter: ask before, settle after."""
    ask = Ask(uuid.uuid4().hex, tenant, MODEL, 1500)
    await gate.admit(ask, pause_over_quota=True, on_wait=_never_waits)
    await gate.settle(ask, USAGE, 0.004)


async def _drive(gate: Gate, calls: int, concurrency: int) -> None:
    queue = iter(range(calls))

    async def worker() -> None:
        for n in queue:
            await _round(gate, f"tenant-{n % 2}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _variant(url: str, pid: int, toml: str, calls: int, concurrency: int) -> dict[str, Any]:
    redis = aioredis.from_url(url)
    try:
        gate = Gate(RedisLimiter(redis, parse_limits(toml), namespace=f"{uuid.uuid4().hex[:6]}."))
        await _drive(gate, min(500, calls), concurrency)  # warm: scripts loaded, pool open
        window = CpuWindow([Watched("redis", pid)])
        started, cpu = time.monotonic(), time.process_time()
        window.start()
        await _drive(gate, calls, concurrency)
        window.stop()
        client_s, wall = time.process_time() - cpu, time.monotonic() - started
    finally:
        await redis.aclose()
    redis_s = window.seconds["redis"]

    def per_call(seconds: float) -> float:
        return round(1000.0 * seconds / calls, 4)

    return {
        "calls": calls,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "calls_per_s": round(calls / wall, 1),
        "client_ms_per_call": per_call(client_s),
        "redis_ms_per_call": per_call(redis_s),
        "ms_per_call": per_call(client_s + redis_s),
    }


async def limiter_cpu(calls: int, concurrency: int = 32) -> dict[str, Any]:
    """CPU per model call of the limiter (rates), and of the limiter with quotas."""
    with private_redis() as (url, pid):
        say(f"limits: {calls} model calls' worth of limiter rounds, rates only")
        rates = await _variant(url, pid, RATES, calls, concurrency)
        say(f"limits: {calls} model calls' worth of limiter rounds, rates and quotas")
        with_quotas = await _variant(url, pid, RATES + QUOTAS, calls, concurrency)
    quotas_ms = round(with_quotas["ms_per_call"] - rates["ms_per_call"], 4)
    return {"rates": rates, "rates_and_quotas": with_quotas, "quotas_ms_per_call": quotas_ms}
