"""What the SDK reads of memory's projections, through memory's read API (never its tables)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from loopline_runtime import PostgresSettings, schema_name

T = TypeVar("T")

Read = Callable[[asyncpg.Connection, str], Awaitable[T]]
"""One of memory's read API functions, its arguments bound: (connection, schema) → answer."""


class MemoryReads:
    """Memory's read API on PostgreSQL, in a namespace: a connection per read (a client reads
    rarely: listing held calls, checking one before deciding it)."""

    def __init__(self, postgres: PostgresSettings, namespace: str = ""):
        self.postgres = postgres
        self.schema = schema_name("memory", namespace)

    async def __call__(self, read: Read[T]) -> T:
        """What `read` answers on memory's schema of the namespace."""
        conn = await asyncpg.connect(self.postgres.dsn.get_secret_value())
        try:
            return await read(conn, self.schema)
        finally:
            await conn.close()
