"""Reads through a service's read API, on this namespace's schema of that service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from loopline_runtime import load_endpoints, schema_name

T = TypeVar("T")

Read = Callable[[asyncpg.Connection, str], Awaitable[T]]


async def service_reads(base: str, read: Read[T]) -> T:
    """What `read` (one of service `base`'s read API functions) answers, on this namespace's
    schema of that service."""
    endpoints = load_endpoints()
    schema = schema_name(base, endpoints.kafka.topic_prefix)
    conn = await asyncpg.connect(endpoints.postgres.dsn.get_secret_value())
    try:
        return await read(conn, schema)
    finally:
        await conn.close()


async def memory_reads(read: Read[T]) -> T:
    """What `read` (one of memory's read API functions) answers."""
    return await service_reads("memory", read)


async def recovery_reads(read: Read[T]) -> T:
    """What `read` (one of recovery's dead-letter API functions) answers."""
    return await service_reads("recovery", read)
