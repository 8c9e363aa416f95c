"""The artifact store on the real PostgreSQL: a writer loads its tokenizer as it opens, so the
first step it serves pays nothing for it (reading the vocabulary takes a second or more of
CPU, which on a handler's event loop held up every run of the service); a reader does not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from loopline_artifacts import SCHEMA, open_artifacts, reference
from loopline_artifacts._tokens import _encoding
from loopline_runtime import Endpoints, schema_name


@pytest.fixture
async def pool(loopline_endpoints: Endpoints, topic_prefix: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(loopline_endpoints.postgres.dsn.get_secret_value())
    yield pool
    await pool.execute(f'DROP SCHEMA IF EXISTS "{schema_name(SCHEMA, topic_prefix)}" CASCADE')
    await pool.close()


async def test_a_writer_opens_with_its_tokenizer_loaded_and_a_reader_without(
    pool: asyncpg.Pool, topic_prefix: str
) -> None:
    _encoding.cache_clear()
    reader = await open_artifacts(pool, topic_prefix, migrated=False)
    assert _encoding.cache_info().currsize == 0
    writer = await open_artifacts(pool, topic_prefix)
    assert _encoding.cache_info().currsize == 1

    text = "the same words, counted once\n" * 1000
    stored = await writer.put(text)
    assert stored == reference(text)
    assert stored.tokens > 0
    assert await reader.read(stored.ref, 4, 10) == text[4:14]
