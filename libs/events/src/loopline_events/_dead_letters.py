"""A message that could not be handled, kept whole with its reason."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Base64Bytes, Field

from loopline_events._envelope import Payload

RETRIES_HEADER = "loopline-retries"
"""Header recovery sets on a message it re-publishes: how many retries it has had."""


class DeadLetterKind(StrEnum):
    """Why a message was dead-lettered; recovery decides what to do by it."""

    UNDECODABLE = "undecodable"
    SCHEMA = "schema"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_VERSION = "unknown_version"
    OVERSIZED = "oversized"
    HANDLER = "handler"
    TRANSIENT = "transient"
    ORPHAN = "orphan"
    """An event of a run that answers nothing the run asked (a forged or misrouted one)."""
    FORBIDDEN = "forbidden"
    """A goal or command whose sender may not send it (see `ForbiddenError`)."""
    BUDGET = "budget"
    """A budget or quota refused the work (a `BudgetExceededError`): retrying cannot help."""


class DeadLettered(Payload):
    """The original bytes, key and headers of a message that failed, and why."""

    TYPE = "DeadLettered"

    source_topic: str = Field(description="Topic the message was read from.")
    partition: int = Field(ge=0, description="Its partition.")
    offset: int = Field(ge=0, description="Its offset.")
    consumer_group: str = Field(description="The group that failed to handle it.")
    kind: DeadLetterKind = Field(description="Class of failure.")
    error: str = Field(description="The error, for a human.")
    original_key: Base64Bytes | None = Field(default=None, description="The message's key.")
    original_value: Base64Bytes = Field(
        description="The message's bytes, unchanged; only those of a message over its topic's "
        "limit are cut to the limit (see original_size)."
    )
    original_size: int | None = Field(
        default=None, ge=0, description="Set when original_value was cut: the message's size."
    )
    original_sha256: str | None = Field(
        default=None, description="Set when original_value was cut: the whole message's digest."
    )
    original_headers: list[tuple[str, Base64Bytes]] = Field(
        default_factory=list, description="The message's headers, unchanged."
    )
    event_type: str | None = Field(default=None, description="Its event type, if readable.")
    attempts: int = Field(default=1, ge=1, description="How often handling was tried.")
    not_before: AwareDatetime | None = Field(
        default=None,
        description="Set by recovery on an entry of a retry topic: when it may be re-published "
        "to its source topic.",
    )
