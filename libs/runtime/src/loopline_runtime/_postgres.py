"""PostgreSQL helpers shared by the services: namespaced schemas and forward-only migrations."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence

import asyncpg
from loopline_events import TransientError

from loopline_runtime._errors import ConfigurationError
from loopline_runtime._settings import Endpoints

POSTGRES_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,  # shutting down, or not accepting connections yet
    asyncpg.InsufficientResourcesError,
    # A pooled connection the server cut is refused by the client before anything is sent
    # ("cannot switch to state ...; another operation is in progress").
    asyncpg.InternalClientError,
)
"""Errors by which PostgreSQL refused or aborted a call before it committed: it may be down,
restarting or out of connections, and the same call can succeed later."""


class PostgresUnavailableError(TransientError):
    """PostgreSQL could not be reached; the bus retries the event (in place, then via recovery)."""


@contextlib.contextmanager
def postgres_unavailable_is_retryable(what: str) -> Iterator[None]:
    """Turn PostgreSQL being unreachable, inside the block, into a retryable error."""
    try:
        yield
    except POSTGRES_UNAVAILABLE as exc:
        raise PostgresUnavailableError(f"{what} unavailable: {exc!r}") from exc


def schema_name(base: str, namespace: str = "") -> str:
    """The schema of `base` (e.g. `memory`) within a namespace (the topic prefix)."""
    clean = re.sub(r"[^a-z0-9]+", "_", namespace.lower()).strip("_")
    return f"{clean}_{base}" if clean else base


def schema_owner(base: str) -> str:
    """The role that owns the schemas of `base` (`memory` → `loopline_memory`), when the
    database has one (docs/decisions/0023)."""
    return f"loopline_{base}"


async def migrate(
    conn: asyncpg.Connection, schema: str, migrations: Sequence[str], owner: str | None = None
) -> int:
    """Apply the migrations not applied yet to `schema`, in order; how many were applied.

    Each migration is SQL in which `{schema}` names the schema. Concurrent starts of several
    replicas are serialised by an advisory lock. When role `owner` exists and this login is a
    member of it (the service's own role, or the operator), what the migrations create is
    owned by `owner`, whoever runs them.
    """
    applied = 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", schema)
        if owner is not None and await _acts_as(conn, owner):
            await conn.execute(f'SET LOCAL ROLE "{owner}"')
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
            "(version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]
            for r in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        }
        for version, sql in enumerate(migrations, start=1):
            if version in done:
                continue
            await conn.execute(sql.replace("{schema}", f'"{schema}"'))
            await conn.execute(
                f'INSERT INTO "{schema}".schema_migrations (version) VALUES ($1)', version
            )
            applied += 1
    return applied


async def _acts_as(conn: asyncpg.Connection, role: str) -> bool:
    """Whether this login may act as `role` (and is not it already)."""
    found = await conn.fetchval(
        "SELECT pg_has_role(current_user, oid, 'MEMBER') AND rolname <> current_user "
        "FROM pg_roles WHERE rolname = $1",
        role,
    )
    return bool(found)


async def open_schema(
    endpoints: Endpoints, base: str, migrations: Sequence[str], *, max_size: int = 8
) -> tuple[asyncpg.Pool, str]:
    """A pool on the service's schema (`base` in the namespace), migrated; and the schema name.

    A role that may not create the schema is a configuration to fix (ConfigurationError)."""
    schema = schema_name(base, endpoints.kafka.topic_prefix)
    pool = await asyncpg.create_pool(
        endpoints.postgres.dsn.get_secret_value(),
        min_size=1,
        max_size=max_size,
        reset=_keep_session,
    )
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, migrations, schema_owner(base))
    except asyncpg.InsufficientPrivilegeError as exc:
        await pool.close()
        raise ConfigurationError(
            f"PostgreSQL refused to create or migrate schema {schema}: {exc} (the role of "
            "LOOPLINE_POSTGRES_DSN must own it, or be a member of its owner "
            f"{schema_owner(base)})"
        ) from None
    except BaseException:
        await pool.close()
        raise
    return pool, schema


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A released connection keeps its session: services set no session state (no LISTEN,
    no session locks, no SET), and the default reset costs a round trip on every release.
    An unfinished transaction is still rolled back by the pool before this is called."""
