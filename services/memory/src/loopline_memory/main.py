"""The memory service's one wiring point."""

from __future__ import annotations

import functools
import logging

import redis.asyncio as aioredis
from loopline_artifacts import load_tokenizer, open_artifacts
from loopline_bus import KafkaBus, SubscriptionOptions
from loopline_runtime import (
    Endpoints,
    Stop,
    load_endpoints,
    load_mcp_servers,
    load_signing,
    open_schema,
)
from loopline_tools import McpTools

from loopline_memory.adapters.environment import load_environment
from loopline_memory.adapters.longterm import LongTermMemory
from loopline_memory.adapters.migrations import MIGRATIONS
from loopline_memory.adapters.store import RunStore
from loopline_memory.domain.replay import MEMORY_INPUTS
from loopline_memory.handlers import MemoryHandler
from loopline_memory.rebuild import Rebuilder

GROUP = "memory"

log = logging.getLogger("loopline.memory")


async def open_rebuilder(
    endpoints: Endpoints, mcp: McpTools | None = None
) -> tuple[Rebuilder, Stop]:
    """Memory's stores (migrated) and environment (with the tools of the MCP servers `mcp`
    is connected to); the function that closes them."""
    namespace = endpoints.kafka.topic_prefix
    pool, schema = await open_schema(endpoints, "memory", MIGRATIONS)
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    store = RunStore(pool, redis, schema, namespace)
    artifacts = await open_artifacts(pool, namespace)
    # Windows and claim checks count the tokens of every message, on the loop: counted with a
    # vocabulary read before the first event.
    await load_tokenizer()

    async def close() -> None:
        await redis.aclose()
        await pool.close()

    env = load_environment(mcp)
    return Rebuilder(store, env, LongTermMemory(pool, schema), artifacts), close


async def start() -> Stop:
    """Connect, migrate, subscribe; return the function that stops it all."""
    endpoints = load_endpoints()
    # Memory shows the MCP servers' tools to the model: it lists them, and hears of changes.
    mcp = McpTools(load_mcp_servers())
    await mcp.start()
    rebuilder, close = await open_rebuilder(endpoints, mcp)
    handler = MemoryHandler(
        rebuilder.store,
        rebuilder.env,
        rebuilder.longterm,
        heal=functools.partial(rebuilder.heal, endpoints.kafka),
        artifacts=rebuilder.artifacts,
        write_behind=True,
    )
    keyring = rebuilder.env.keyring
    if keyring is None:
        log.warning(
            "goals and commands are taken unsigned, whatever tenant they claim: set "
            "LOOPLINE_SIGNING_KEYS_FILE on any cluster other than a developer's own"
        )
    else:
        log.info("goals and commands must be signed by one of %d keys", len(keyring))
    # Signed: memory's own goals and commands (a sub-task's goal, its cancel) are taken only
    # from a key that acts for every tenant.
    bus = KafkaBus(
        settings=endpoints.kafka, client_id=GROUP, signing_key=load_signing().signing_key()
    )
    await bus.ensure_topics()
    await bus.start()
    options = SubscriptionOptions(
        before_publish=handler.flush, on_reassigned=handler.forget, admit_foreign=True
    )
    await bus.subscribe(GROUP, list(MEMORY_INPUTS), handler, options).start()

    async def stop() -> None:
        await bus.stop()
        await mcp.close()
        await close()

    return stop
