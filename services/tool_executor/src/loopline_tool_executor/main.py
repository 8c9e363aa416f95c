"""The tool-executor service's one wiring point."""

from __future__ import annotations

from loopline_artifacts import open_artifacts
from loopline_bus import KafkaBus, SubscriptionOptions
from loopline_events import DECISIONS, Backoff
from loopline_runtime import (
    Stop,
    load_endpoints,
    load_guards,
    load_mcp_servers,
    load_profiles,
    open_schema,
)
from loopline_tools import McpTools, ToolRegistry
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopline_tool_executor.adapters.ledger import ToolLedger
from loopline_tool_executor.adapters.migrations import MIGRATIONS
from loopline_tool_executor.handlers import ExecutorHandler

GROUP = "tool-executor"

RIDE_OUT = SubscriptionOptions(max_attempts=18, backoff=Backoff(base_s=0.25, cap_s=2.0))
"""Retries of a decision whose ledger is unreachable: waits drawn below 0.25 s doubling to a
2 s ceiling, 31 s of ceilings in all, so a PostgreSQL restart is waited out in place (no call
can run without the ledger, and every decision behind it would meet the same) instead of
dead-lettering every decision. The low ceiling is what makes the runs go on within 2 s of the
database's return: a 15 s one left them waiting up to 15 s more after a 10 s outage."""


class ExecutorSettings(BaseSettings):
    """Settings of the tool-executor (LOOPLINE_TOOLS_*)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_TOOLS_", frozen=True)

    allow_private_networks: bool = Field(
        default=False,
        description="Let http_get reach private, loopback and link-local addresses "
        "(LOOPLINE_TOOLS_ALLOW_PRIVATE_NETWORKS). Off: tools cannot probe your network.",
    )


async def start() -> Stop:
    """Subscribe to decisions; return the function that stops it all."""
    endpoints = load_endpoints()
    settings = ExecutorSettings()
    registry = ToolRegistry.default()
    profiles = load_profiles(tools=registry.offered())
    guards = load_guards(profiles)  # a guard named wrongly stops the start, before any call
    mcp = McpTools(load_mcp_servers())
    # Connected before the first decision, so its calls find their tools; a server that is
    # away is not waited for beyond its connect timeout (its calls then say it is away).
    await mcp.start()
    pool, schema = await open_schema(endpoints, "executor", MIGRATIONS)
    handler = ExecutorHandler(
        registry,
        profiles,
        allow_private_networks=settings.allow_private_networks,
        ledger=ToolLedger(pool, schema),
        artifacts=await open_artifacts(pool, endpoints.kafka.topic_prefix),
        mcp=mcp,
        guards=guards,
    )
    bus = KafkaBus(settings=endpoints.kafka, client_id=GROUP)
    await bus.ensure_topics()
    await bus.start()
    await bus.subscribe(GROUP, [DECISIONS.name], handler, RIDE_OUT).start()

    async def stop() -> None:
        await bus.stop()
        await mcp.close()
        await pool.close()

    return stop
