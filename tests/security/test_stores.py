"""PostgreSQL, Redis and Prometheus let each principal do its own job and nothing more
(docs/decisions/0023).

Against the session's real servers: each service's PostgreSQL role reaches its own schema
alone and runs no program on the server; Redis answers no one without a password, and a
service's user reaches its own keys alone; Prometheus cannot be stopped over HTTP.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from loopline_infra import Infra, Prometheus
from loopline_memory.adapters.migrations import MIGRATIONS as MEMORY_MIGRATIONS
from loopline_runtime import Endpoints, open_schema
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

ROLES = ("memory", "planner", "tool-executor", "recovery", "gateway", "operator")


@pytest.fixture
def infra(loopline_infra: Infra | None) -> Infra:
    assert loopline_infra is not None, "these tests need the project's own servers"
    return loopline_infra


def dsn(endpoints: Endpoints) -> str:
    return endpoints.postgres.dsn.get_secret_value()


@pytest.fixture
async def memory_schema(infra: Infra, topic_prefix: str) -> AsyncIterator[str]:
    """Memory's schema of the test's namespace, made by memory's own role."""
    pool, schema = await open_schema(
        infra.endpoints("memory", topic_prefix), "memory", MEMORY_MIGRATIONS
    )
    try:
        yield schema
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


@pytest.mark.parametrize("principal", ["planner", "tool-executor", "recovery"])
async def test_a_services_role_cannot_read_another_services_schema(
    infra: Infra, memory_schema: str, principal: str
) -> None:
    conn = await asyncpg.connect(dsn(infra.endpoints(principal)))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch(f'SELECT * FROM "{memory_schema}".runs')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f'DROP TABLE "{memory_schema}".runs')
    finally:
        await conn.close()


async def test_the_owner_and_the_gateway_read_memorys_tables(
    infra: Infra, memory_schema: str
) -> None:
    # The gateway serves memory's read API; it reads, it does not write.
    for principal in ("memory", "gateway"):
        conn = await asyncpg.connect(dsn(infra.endpoints(principal)))
        try:
            assert await conn.fetch(f'SELECT * FROM "{memory_schema}".runs') == []
        finally:
            await conn.close()
    conn = await asyncpg.connect(dsn(infra.endpoints("gateway")))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f'DELETE FROM "{memory_schema}".runs')
    finally:
        await conn.close()


@pytest.mark.parametrize("principal", ROLES)
async def test_no_role_runs_a_program_on_the_server_or_is_a_superuser(
    infra: Infra, principal: str
) -> None:
    conn = await asyncpg.connect(dsn(infra.endpoints(principal)))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("COPY (SELECT 1) TO PROGRAM 'touch /tmp/loopline-owned'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT pg_read_file('/etc/passwd')")
        assert (
            await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            is False
        )
    finally:
        await conn.close()


async def test_postgres_wants_the_password(infra: Infra) -> None:
    real = dsn(infra.endpoints("memory"))
    role, rest = real.removeprefix("postgresql://").split(":", 1)
    wrong = f"postgresql://{role}:not-the-password@{rest.split('@', 1)[1]}"
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)
    # The old superuser, trusted from 127.0.0.1, is gone.
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://loopline:@{rest.split('@', 1)[1]}")


async def test_redis_answers_no_one_without_a_password(infra: Infra) -> None:
    anonymous = aioredis.from_url(f"redis://127.0.0.1:{infra.ports.redis}/0")
    try:
        with pytest.raises(AuthenticationError):
            await anonymous.get("loopline:run:anything")
    finally:
        await anonymous.aclose()


async def test_a_services_redis_user_reaches_its_own_keys_alone(
    infra: Infra, topic_prefix: str
) -> None:
    memory = aioredis.from_url(infra.endpoints("memory").redis.url.get_secret_value())
    planner = aioredis.from_url(infra.endpoints("planner").redis.url.get_secret_value())
    key = f"{topic_prefix}loopline:run:r1"
    try:
        await memory.set(key, "state", ex=60)
        with pytest.raises(NoPermissionError):
            await planner.get(key)
        with pytest.raises(NoPermissionError):
            await planner.flushall()
        with pytest.raises((NoPermissionError, ResponseError)):
            await planner.config_set("dir", "/tmp")
        assert await memory.get(key) == b"state"
    finally:
        await memory.delete(key)
        await memory.aclose()
        await planner.aclose()


def post(url: str) -> int:
    """POST to `url`; its status."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as refused:
        return refused.code


async def test_prometheus_cannot_be_stopped_or_reloaded_over_http(infra: Infra) -> None:
    prometheus = infra.component("prometheus")
    assert isinstance(prometheus, Prometheus)
    for path in ("/-/quit", "/-/reload"):
        status = await asyncio.to_thread(post, prometheus.endpoint + path)
        assert status in (403, 404), path
    await prometheus.ready()  # still up
    assert prometheus.pid() is not None
