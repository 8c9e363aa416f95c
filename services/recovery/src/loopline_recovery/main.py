"""The recovery service's one wiring point."""

from __future__ import annotations

from loopline_bus import KafkaBus, SubscriptionOptions
from loopline_events import LOOP_TOPICS, RETRY_TOPICS
from loopline_runtime import Stop, load_endpoints, open_schema
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopline_recovery.adapters.ledger import DeadLetterLedger
from loopline_recovery.adapters.migrations import MIGRATIONS
from loopline_recovery.domain import RetryPolicy
from loopline_recovery.handlers import RecoveryHandler, RetryHandler

GROUP = "recovery"
RETRY_GROUP = "recovery-retry"


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


async def start() -> Stop:
    """Consume every dead-letter topic and the retry tiers; return the function that stops it."""
    endpoints = load_endpoints()
    settings = RecoverySettings()
    pool, schema = await open_schema(endpoints, "recovery", MIGRATIONS, max_size=4)
    bus = KafkaBus(settings=endpoints.kafka, client_id=GROUP)
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

    async def stop() -> None:
        await bus.stop()
        await pool.close()

    return stop
