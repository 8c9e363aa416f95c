"""The artifact store: content too large to travel on Kafka, stored once under its digest.

A claim check: the producer of a large tool output (or message) stores it here before it
publishes its event, and the event carries an `ArtifactRef` (digest, size, tokens) instead of
the content. Content is addressed by its SHA-256, so storing it again is a no-op, and what a
reference names never changes. Readers take it whole or a slice of it; the column is stored
uncompressed so a slice reads only the pages it spans.

It lives in PostgreSQL, in the namespace's `artifacts` schema, written by the services that
produce large content and read by those that show it (the planner) or serve it
(`read_artifact`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable

import asyncpg
from loopline_events import ArtifactRef
from loopline_runtime import (
    migrate,
    postgres_unavailable_is_retryable,
    schema_name,
    schema_owner,
)

from loopline_artifacts._tokens import count_tokens, load_tokenizer

SCHEMA = "artifacts"
"""The store's schema, within each namespace."""

INLINE_CHARS = 16 * 1024
"""Texts longer than this travel as artifacts (their reference on Kafka, the text here): step
events then stay small whatever a tool returns or a run holds."""

MAX_ARTIFACT_CHARS = 64 * 1024 * 1024
"""The largest content kept (characters): 64 Mi, far above what any model window takes."""

OFF_LOOP_CHARS = 256 * 1024
"""Content longer than this is hashed and counted in a thread, not on the event loop."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {schema}.artifacts (
        ref        text PRIMARY KEY,
        chars      bigint NOT NULL,
        tokens     bigint NOT NULL,
        content    text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    ALTER TABLE {schema}.artifacts ALTER COLUMN content SET STORAGE EXTERNAL;
    """,
)


class ArtifactTooLargeError(ValueError):
    """Content over every store's limit: a clear error for the run, never retried."""

    retryable = False

    def __init__(self, chars: int, limit: int = MAX_ARTIFACT_CHARS):
        super().__init__(
            f"content of {chars} characters exceeds the artifact store's limit of {limit}"
        )
        self.chars, self.limit = chars, limit


class ArtifactMissingError(LookupError):
    """A reference to content the store does not hold (it was never stored here)."""


def reference(text: str) -> ArtifactRef:
    """The reference `text` is stored under: its digest, size and tokens (no I/O)."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return ArtifactRef(ref=f"sha256:{digest}", chars=len(text), tokens=count_tokens(text))


class ArtifactStore:
    """Artifacts of one schema."""

    def __init__(self, pool: asyncpg.Pool, schema: str, *, limit: int = MAX_ARTIFACT_CHARS):
        self.pool, self.schema, self.limit = pool, schema, limit

    async def put(self, text: str) -> ArtifactRef:
        """Store `text` (once: storing it again changes nothing); its reference.

        NUL characters, which PostgreSQL text cannot hold and no model reads, are stored as
        U+FFFD: the reference names the content as stored.
        """
        text = text.replace("\x00", "\ufffd")
        if len(text) > self.limit:
            raise ArtifactTooLargeError(len(text), self.limit)
        await load_tokenizer()
        ref = (
            await asyncio.to_thread(reference, text)
            if len(text) > OFF_LOOP_CHARS
            else (reference(text))
        )
        with postgres_unavailable_is_retryable("the artifact store"):
            await self.pool.execute(
                f'INSERT INTO "{self.schema}".artifacts (ref, chars, tokens, content) '
                "VALUES ($1, $2, $3, $4) ON CONFLICT (ref) DO NOTHING",
                ref.ref,
                ref.chars,
                ref.tokens,
                text,
            )
        return ref

    async def read(self, ref: str, offset: int = 0, length: int | None = None) -> str:
        """The content under `ref`, or `length` characters of it from `offset`."""
        start = max(0, offset) + 1  # SQL strings count from 1
        with postgres_unavailable_is_retryable("the artifact store"):
            if length is None:
                found = await self.pool.fetchval(
                    f'SELECT substr(content, $2) FROM "{self.schema}".artifacts WHERE ref = $1',
                    ref,
                    start,
                )
            else:
                found = await self.pool.fetchval(
                    f'SELECT substr(content, $2, $3) FROM "{self.schema}".artifacts WHERE ref = $1',
                    ref,
                    start,
                    max(0, length),
                )
        if found is None:
            raise ArtifactMissingError(f"no artifact {ref}")
        return str(found)

    async def read_many(self, refs: Iterable[str]) -> dict[str, str]:
        """The whole content of each of `refs` that the store holds, in one round trip."""
        wanted = sorted(set(refs))
        if not wanted:
            return {}
        with postgres_unavailable_is_retryable("the artifact store"):
            rows = await self.pool.fetch(
                f'SELECT ref, content FROM "{self.schema}".artifacts WHERE ref = ANY($1::text[])',
                wanted,
            )
        return {r["ref"]: r["content"] for r in rows}

    async def describe(self, ref: str) -> ArtifactRef | None:
        """The reference of stored content (its size and tokens), without reading it."""
        with postgres_unavailable_is_retryable("the artifact store"):
            row = await self.pool.fetchrow(
                f'SELECT chars, tokens FROM "{self.schema}".artifacts WHERE ref = $1', ref
            )
        return (
            None if row is None else ArtifactRef(ref=ref, chars=row["chars"], tokens=row["tokens"])
        )


async def open_artifacts(
    pool: asyncpg.Pool, namespace: str = "", *, migrated: bool = True
) -> ArtifactStore:
    """The namespace's artifact store on `pool`'s database, its schema migrated (by its
    writers; a reader, `migrated=False`, only reads what they made). A writer counts the
    tokens of what it stores, loading its tokenizer (in a thread) the first time it does."""
    schema = schema_name(SCHEMA, namespace)
    if migrated:
        async with pool.acquire() as conn:
            await migrate(conn, schema, MIGRATIONS, schema_owner(SCHEMA))
    return ArtifactStore(pool, schema)
