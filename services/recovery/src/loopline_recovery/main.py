"""The recovery service's one wiring point."""

from __future__ import annotations

import asyncpg
from loopline_bus import KafkaBus
from loopline_events import LOOP_TOPICS
from loopline_runtime import Stop, load_endpoints, migrate, schema_name

from loopline_recovery.adapters.ledger import DeadLetterLedger
from loopline_recovery.adapters.migrations import MIGRATIONS
from loopline_recovery.handlers import RecoveryHandler

GROUP = "recovery"


async def start() -> Stop:
    """Subscribe to every dead-letter topic; return the function that stops it all."""
    endpoints = load_endpoints()
    schema = schema_name("recovery", endpoints.kafka.topic_prefix)
    pool = await asyncpg.create_pool(
        endpoints.postgres.dsn.get_secret_value(), min_size=1, max_size=4
    )
    async with pool.acquire() as conn:
        await migrate(conn, schema, MIGRATIONS)
    bus = KafkaBus(settings=endpoints.kafka, client_id=GROUP)
    await bus.ensure_topics()
    await bus.start()
    handler = RecoveryHandler(DeadLetterLedger(pool, schema))
    await bus.subscribe(GROUP, [t.dlq.name for t in LOOP_TOPICS], handler).start()

    async def stop() -> None:
        await bus.stop()
        await pool.close()

    return stop
