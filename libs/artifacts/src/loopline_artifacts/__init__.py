"""Loopline artifacts: content too large for Kafka, stored once by its digest and referenced
from events (a claim check); and the token counts context windows are planned with."""

from loopline_artifacts._store import (
    INLINE_CHARS,
    MAX_ARTIFACT_CHARS,
    MIGRATIONS,
    SCHEMA,
    ArtifactMissingError,
    ArtifactStore,
    ArtifactTooLargeError,
    open_artifacts,
    reference,
)
from loopline_artifacts._tokens import count_tokens, load_tokenizer

__all__ = [
    "INLINE_CHARS",
    "MAX_ARTIFACT_CHARS",
    "MIGRATIONS",
    "SCHEMA",
    "ArtifactMissingError",
    "ArtifactStore",
    "ArtifactTooLargeError",
    "count_tokens",
    "load_tokenizer",
    "open_artifacts",
    "reference",
]
