"""Read-only queries of a service's PostgreSQL schema, for the commands that list things."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from loopline_runtime import load_endpoints, schema_name

T = TypeVar("T")


async def query(base: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of `sql`, where `{schema}` names schema `base` of the namespace.

    No rows when the schema's tables do not exist yet (the service has never run).
    """
    endpoints = load_endpoints()
    schema = schema_name(base, endpoints.kafka.topic_prefix)
    conn = await asyncpg.connect(endpoints.postgres.dsn.get_secret_value())
    try:
        return list(await conn.fetch(sql.replace("{schema}", f'"{schema}"'), *args))
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()


async def memory_reads(read: Callable[[asyncpg.Connection, str], Awaitable[T]]) -> T:
    """What `read` (one of memory's read API functions) answers, on this namespace's schema."""
    endpoints = load_endpoints()
    schema = schema_name("memory", endpoints.kafka.topic_prefix)
    conn = await asyncpg.connect(endpoints.postgres.dsn.get_secret_value())
    try:
        return await read(conn, schema)
    finally:
        await conn.close()
