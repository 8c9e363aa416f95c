"""The shared rate limiter on the real Redis: rates spread evenly, waiting tenants served in
turn, quotas over rolling windows, a provider's hold seen by every caller, vanished waiters
dropped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from loopline_events import DelayReason, TokenUsage
from loopline_planner.adapters.limiter import (
    Ask,
    Gate,
    QuotaExceededError,
    RedisLimiter,
    Verdict,
)
from loopline_runtime import Endpoints, parse_limits

MODEL = "openai:gpt-test"


@pytest.fixture
async def redis(loopline_endpoints: Endpoints, topic_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(loopline_endpoints.redis.url.get_secret_value())
    yield client
    keys = [k async for k in client.scan_iter(match=f"{topic_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def limiter(redis: aioredis.Redis, prefix: str, toml: str, grace_s: float = 10.0) -> RedisLimiter:
    return RedisLimiter(redis, parse_limits(toml), namespace=prefix, grace_s=grace_s)


async def admitted_at(gate: Gate, ask: Ask) -> float:
    async def no_op(verdict: Verdict) -> None:
        pass

    await gate.admit(ask, pause_over_quota=True, on_wait=no_op)
    return time.monotonic()


async def test_a_request_rate_is_spread_evenly_over_every_caller(
    redis: aioredis.Redis, topic_prefix: str
) -> None:
    # 600 a minute: one call every 100 ms (102 with the margin), whoever asks.
    gates = [
        Gate(limiter(redis, topic_prefix, f'[models."{MODEL}"]\nrequests_per_minute = 600'))
        for _ in range(3)  # three replicas, one Redis
    ]
    asks = [Ask(f"call-{i}", "acme", MODEL, 10) for i in range(12)]
    started = time.monotonic()
    times = sorted(
        await asyncio.gather(*(admitted_at(gates[i % 3], a) for i, a in enumerate(asks)))
    )
    # The limiter grants on Redis's clock; a caller sees its grant later, by however long its
    # answer and its wake-up took (more on a busy machine), so the gaps seen between callers
    # can shrink below 100 ms while the grants' gaps do not. What a caller can see for sure:
    # the k-th call goes no sooner than k slots after the first could (the clocks differ by a
    # few ms at most).
    early = [
        (k, round(t - started, 3)) for k, t in enumerate(times) if t - started < k * 0.1 - 0.005
    ]
    assert not early, f"calls admitted before their slot (k, seconds): {early}"
    assert times[-1] - started >= 11 * 0.1


async def test_waiting_tenants_are_served_in_turn(redis: aioredis.Redis, topic_prefix: str) -> None:
    gate = Gate(limiter(redis, topic_prefix, f'[models."{MODEL}"]\nrequests_per_minute = 600'))
    order: list[str] = []

    async def call(tenant: str, n: int) -> None:
        await admitted_at(gate, Ask(f"{tenant}-{n}", tenant, MODEL, 10))
        order.append(tenant)

    flood = [asyncio.create_task(call("flood", n)) for n in range(20)]
    await asyncio.sleep(0.35)  # the flood holds the queue
    light = [asyncio.create_task(call("light", n)) for n in range(3)]
    await asyncio.gather(*flood, *light)
    # Once it waits, the light tenant gets every other slot, not the back of the queue.
    first_light = order.index("light")
    assert first_light <= 6
    lights = [i for i, t in enumerate(order) if t == "light"]
    assert lights[-1] - lights[0] <= 6


async def test_a_tenant_over_its_daily_tokens_waits_or_is_refused_the_other_goes(
    redis: aioredis.Redis, topic_prefix: str
) -> None:
    toml = "[tenants.greedy]\ntokens_per_day = 1000\n[tenants.frugal]\ntokens_per_day = 1000\n"
    lim = limiter(redis, topic_prefix, toml)
    gate = Gate(lim)
    spend = Ask("greedy-1", "greedy", MODEL, 100)
    assert (await lim.ask(spend)).go
    await gate.settle(spend, TokenUsage(prompt_tokens=900, completion_tokens=150), 0.01)
    refused = await lim.ask(Ask("greedy-2", "greedy", MODEL, 100))
    assert (refused.go, refused.reason) == (False, DelayReason.QUOTA)
    assert 0 < refused.expected_s <= 24 * 3600  # when the oldest hour leaves the day
    assert (await lim.ask(Ask("frugal-1", "frugal", MODEL, 100))).go
    with pytest.raises(QuotaExceededError, match="tenant 'greedy' is over its quota"):
        await gate.admit(
            Ask("greedy-3", "greedy", MODEL, 100), pause_over_quota=False, on_wait=_ignore
        )
    waits: list[Verdict] = []

    async def seen(verdict: Verdict) -> None:
        waits.append(verdict)
        raise asyncio.CancelledError  # paused: the test has seen enough

    with pytest.raises(asyncio.CancelledError):
        await gate.admit(Ask("greedy-4", "greedy", MODEL, 100), pause_over_quota=True, on_wait=seen)
    assert waits[0].reason is DelayReason.QUOTA


async def test_cost_quotas_count_what_calls_cost(redis: aioredis.Redis, topic_prefix: str) -> None:
    lim = limiter(redis, topic_prefix, '[tenants."*"]\ncost_usd_per_hour = 0.05\n')
    gate = Gate(lim)
    first = Ask("c-1", "anyone", MODEL, 10)
    assert (await lim.ask(first)).go
    await gate.settle(first, TokenUsage(prompt_tokens=10), 0.049)
    assert (await lim.ask(Ask("c-2", "anyone", MODEL, 10))).go
    await gate.settle(first, TokenUsage(prompt_tokens=10), 0.002)
    verdict = await lim.ask(Ask("c-3", "anyone", MODEL, 10))
    assert (verdict.go, verdict.reason) == (False, DelayReason.QUOTA)
    assert verdict.expected_s <= 3600


async def test_tokens_per_minute_are_reserved_then_corrected_by_usage(
    redis: aioredis.Redis, topic_prefix: str
) -> None:
    lim = limiter(redis, topic_prefix, f'[models."{MODEL}"]\ntokens_per_minute = 6000\n')
    big = Ask("t-1", "acme", MODEL, 6000)
    assert (await lim.ask(big)).go  # an empty bucket lets any one call go
    second = Ask("t-2", "acme", MODEL, 600)
    held = await lim.ask(second)
    assert (held.go, held.reason) == (False, DelayReason.RATE_LIMIT)
    assert held.expected_s > 5  # the minute's tokens are spent
    # It read and wrote far less than reserved: the difference is given back.
    await lim.settle(big, TokenUsage(prompt_tokens=50, completion_tokens=10), 0.0)
    assert (await lim.ask(second)).go


async def test_a_providers_hold_is_seen_by_every_replica(
    redis: aioredis.Redis, topic_prefix: str
) -> None:
    one, other = limiter(redis, topic_prefix, ""), limiter(redis, topic_prefix, "")
    assert one.applies(MODEL, "acme")  # a remote provider: its calls always ask
    await one.hold(MODEL, 0.4)
    held = await other.ask(Ask("h-1", "acme", "openai:another-model", 10))
    assert (held.go, held.reason) == (False, DelayReason.PROVIDER_BUSY)
    assert 0 < held.wait_s <= 0.4
    started = time.monotonic()
    await admitted_at(Gate(other), Ask("h-2", "acme", MODEL, 10))
    assert 0.2 <= time.monotonic() - started < 2.0


async def test_a_waiter_that_vanished_stops_holding_its_tenants_place(
    redis: aioredis.Redis, topic_prefix: str
) -> None:
    toml = f'[models."{MODEL}"]\nrequests_per_minute = 600'
    lim = limiter(redis, topic_prefix, toml, grace_s=0.3)
    assert (await lim.ask(Ask("first", "acme", MODEL, 10))).go
    # It asks, is told to wait, and its replica dies: it never asks again.
    assert not (await lim.ask(Ask("ghost", "acme", MODEL, 10))).go
    started = time.monotonic()
    await admitted_at(Gate(lim), Ask("alive", "acme", MODEL, 10))
    assert time.monotonic() - started < 2.0


def test_the_demo_model_asks_nothing_unless_limits_name_it() -> None:
    lim = RedisLimiter(aioredis.Redis(), parse_limits(""), namespace="x.")
    assert not lim.applies("demo", "acme")
    named = RedisLimiter(aioredis.Redis(), parse_limits("[tenants.acme]\ntokens_per_day = 5"))
    assert named.applies("demo", "acme")
    assert not named.applies("demo", "other")


async def _ignore(verdict: Verdict) -> None:
    pass
