"""The artifact store on the real PostgreSQL: a writer reads its tokenizer's vocabulary the first
time it stores something, off its event loop (a few tenths of a second of CPU, which on a
handler's loop would hold up every run of the service); opening a store reads nothing, so a
service that never stores large content never pays for it; a reader never does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from loopline_artifacts import SCHEMA, load_tokenizer, open_artifacts, reference
from loopline_artifacts._tokens import _encoding
from loopline_runtime import Endpoints, schema_name


@pytest.fixture
async def pool(loopline_endpoints: Endpoints, topic_prefix: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(loopline_endpoints.postgres.dsn.get_secret_value())
    yield pool
    await pool.execute(f'DROP SCHEMA IF EXISTS "{schema_name(SCHEMA, topic_prefix)}" CASCADE')
    await pool.close()


async def test_a_writer_reads_its_vocabulary_when_it_first_stores_and_a_reader_never(
    pool: asyncpg.Pool, topic_prefix: str
) -> None:
    _encoding.cache_clear()
    reader = await open_artifacts(pool, topic_prefix, migrated=False)
    writer = await open_artifacts(pool, topic_prefix)
    assert _encoding.cache_info().currsize == 0

    text = "the same words, counted once\n" * 1000
    stored = await writer.put(text)
    assert stored == reference(text)
    assert stored.tokens > 0
    assert await reader.read(stored.ref, 4, 10) == text[4:14]
    assert _encoding.cache_info().currsize == 1


async def test_the_vocabulary_is_read_while_the_loop_serves_others() -> None:
    _encoding.cache_clear()
    ticks = 0

    async def other_runs() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    others = asyncio.create_task(other_runs())
    await asyncio.sleep(0)
    try:
        before = ticks
        await load_tokenizer()
        assert ticks > before + 1  # the loop went on while a thread read it
    finally:
        others.cancel()
    assert _encoding.cache_info().currsize == 1
    await load_tokenizer()  # once read, nothing more to read
    assert _encoding.cache_info().currsize == 1
