"""The recovery service's one wiring point."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from loopline_bus import KafkaBus, SubscriptionOptions
from loopline_events import LOOP_TOPICS, OPERATIONS, RETRY_TOPICS
from loopline_runtime import (
    Endpoints,
    Stop,
    load_endpoints,
    load_profiles,
    load_signing,
    open_schema,
    stop_task,
)
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopline_recovery.adapters.feed import WatchFeed
from loopline_recovery.adapters.ledger import DeadLetterLedger, RedriveLedger
from loopline_recovery.adapters.migrations import MIGRATIONS
from loopline_recovery.adapters.redrive import LogRedriver
from loopline_recovery.adapters.table import WatchTable
from loopline_recovery.domain import Policy, RetryPolicy
from loopline_recovery.handlers import RecoveryHandler, RedriveHandler, RetryHandler
from loopline_recovery.watchdog import Timings, Watchdog, sweep_forever

GROUP = "recovery"
RETRY_GROUP = "recovery-retry"
OPERATIONS_GROUP = "recovery-operations"
WATCHDOG_GROUP = "recovery-watchdog"


class RecoverySettings(BaseSettings):
    """Settings of recovery (LOOPLINE_RECOVERY_*)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_RECOVERY_", frozen=True)

    retry_delays_s: tuple[float, float, float] = Field(
        default=(1.0, 5.0, 25.0),
        description="Wait before the 1st, 2nd and 3rd-or-later retry of a transient failure, "
        "as JSON (LOOPLINE_RECOVERY_RETRY_DELAYS_S='[1, 5, 25]').",
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        description="Retries of a transient failure before it is parked and its run failed "
        "(LOOPLINE_RECOVERY_MAX_RETRIES).",
    )
    watchdog_redrives: int = Field(
        default=3,
        ge=0,
        description="Re-drives of a stalled step before its run fails as `stalled` "
        "(LOOPLINE_RECOVERY_WATCHDOG_REDRIVES).",
    )
    watchdog_backoff: float = Field(
        default=1.5,
        ge=1.0,
        description="Each wait for a stalled step is this many times the previous one, the "
        "first being the profile's step_timeout_s (LOOPLINE_RECOVERY_WATCHDOG_BACKOFF).",
    )
    watchdog_sweep_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the watchdog looks for overdue runs "
        "(LOOPLINE_RECOVERY_WATCHDOG_SWEEP_S).",
    )
    watchdog_step_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Step timeout of a run whose agent profile is unknown to recovery "
        "(LOOPLINE_RECOVERY_WATCHDOG_STEP_TIMEOUT_S).",
    )


async def start() -> Stop:
    """Consume every dead-letter topic and the retry tiers; return the function that stops it."""
    endpoints = load_endpoints()
    settings = RecoverySettings()
    pool, schema = await open_schema(endpoints, "recovery", MIGRATIONS, max_size=4)
    bus = KafkaBus(
        settings=endpoints.kafka, client_id=GROUP, signing_key=load_signing().signing_key()
    )
    await bus.ensure_topics()
    await bus.start()
    policy = RetryPolicy(settings.retry_delays_s, settings.max_retries)
    handler = RecoveryHandler(DeadLetterLedger(pool, schema), policy)
    await bus.subscribe(GROUP, [t.dlq.name for t in LOOP_TOPICS], handler).start()
    # One consumer per tier, so a long tier never holds a short one's batch.
    waiting = SubscriptionOptions(max_batch=100, concurrency=100)
    for tier in RETRY_TOPICS:
        group = f"{RETRY_GROUP}-{tier.name.rsplit('.', 1)[-1]}"
        await bus.subscribe(group, [tier.name], RetryHandler(bus), waiting).start()
    redrives = RedriveHandler(RedriveLedger(pool, schema), bus)
    await bus.subscribe(OPERATIONS_GROUP, [OPERATIONS.name], redrives).start()

    stop_watchdog = await start_watchdog(endpoints, settings, bus)

    async def stop() -> None:
        await stop_watchdog()
        await bus.stop()
        await pool.close()

    return stop


async def start_watchdog(endpoints: Endpoints, settings: RecoverySettings, bus: KafkaBus) -> Stop:
    """Follow the run topics as the watchdog's group and sweep for stalled runs."""
    kafka = endpoints.kafka
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    redriver = LogRedriver(bus, kafka)
    policy = Policy(redrives=settings.watchdog_redrives, backoff=settings.watchdog_backoff)
    timings = Timings(load_profiles(), settings.watchdog_step_timeout_s)
    watchdog = Watchdog(WatchTable(redis, kafka.topic_prefix), redriver, timings, policy)
    feed = WatchFeed(
        kafka,
        WATCHDOG_GROUP,
        [t.name for t in LOOP_TOPICS],
        on_batch=watchdog.observe,
        on_assigned=watchdog.assigned,
        on_revoked=watchdog.revoked,
    )
    await feed.start()
    stopping = asyncio.Event()
    sweeper = asyncio.create_task(
        sweep_forever(watchdog, feed.fresh, settings.watchdog_sweep_s, stopping),
        name="watchdog-sweep",
    )

    async def stop() -> None:
        stopping.set()
        await stop_task(sweeper)
        await feed.stop()
        await redriver.stop()
        await redis.aclose()

    return stop
