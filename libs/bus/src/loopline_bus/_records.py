"""Messages as the bus moves them: an output to publish, a record read, and the wire form.

The wire form carries the event's type, schema version and W3C trace context as Kafka headers
too, so any Kafka client (and any tracing tool that reads headers) can follow a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from loopline_events import (
    ApprovalDecided,
    CancelRun,
    Envelope,
    FailRun,
    GoalSubmitted,
    RedriveDeadLetter,
    RunForked,
    RunSteered,
    SigningKey,
    TraceContext,
    encode_event,
)

EVENT_TYPE_HEADER = "event-type"
SCHEMA_VERSION_HEADER = "schema-version"
TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
# TraceContext's own limit; a longer tracestate is dropped rather than failing the event.
_MAX_TRACESTATE = 512


@dataclass(frozen=True, slots=True)
class Outbound:
    """An event a handler wants published once its input is done: the step's output."""

    topic: str
    event: Envelope[Any]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A message as read from a topic, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None
    """The record's time in the log, when known."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """An output ready for the wire, with the event it encodes and the event it answers.

    `event` is None for bytes published as they are; `cause` is None for events published
    directly rather than by a handler. Middleware reads both once the broker acknowledged it.
    """

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    event: Envelope[Any] | None = field(default=None, compare=False)
    cause: Envelope[Any] | None = field(default=None, compare=False)
    partition: int | None = None
    """A partition chosen by the sender; None: the key's (murmur2), as for every event."""


SIGNED_TYPES = frozenset(
    {
        GoalSubmitted.TYPE,
        RunForked.TYPE,
        CancelRun.TYPE,
        FailRun.TYPE,
        RedriveDeadLetter.TYPE,
        ApprovalDecided.TYPE,
        RunSteered.TYPE,
    }
)
"""Goals and commands: what a bus with a signing key signs (docs/decisions/0025)."""


def encode_outbound(
    out: Outbound, cause: Envelope[Any] | None = None, signing_key: SigningKey | None = None
) -> Encoded:
    """The wire form of an output: JSON value, run id as key, type and trace headers; a goal
    or command signed with `signing_key`, if given."""
    event = out.event
    if signing_key is not None and event.type in SIGNED_TYPES:
        event = signing_key.sign(event)
    headers = [
        (EVENT_TYPE_HEADER, event.type.encode()),
        (SCHEMA_VERSION_HEADER, str(event.schema_version).encode()),
    ]
    if event.trace is not None:
        headers.append((TRACEPARENT_HEADER, event.trace.traceparent.encode()))
        if event.trace.tracestate:
            headers.append((TRACESTATE_HEADER, event.trace.tracestate.encode()))
    return Encoded(
        topic=out.topic,
        key=event.run_id.encode(),
        value=encode_event(event),
        headers=tuple(headers),
        event=event,
        cause=cause,
    )


def trace_context(traceparent: str, tracestate: str = "") -> TraceContext | None:
    """A trace context from W3C header values; None when `traceparent` is malformed."""
    traceparent = traceparent.strip().lower()
    if not _TRACEPARENT.match(traceparent) or traceparent.startswith("ff"):
        return None
    if len(tracestate) > _MAX_TRACESTATE:
        tracestate = ""
    return TraceContext(traceparent=traceparent, tracestate=tracestate)


def trace_from_headers(headers: tuple[tuple[str, bytes], ...]) -> TraceContext | None:
    """The trace context a record's `traceparent`/`tracestate` headers carry, if valid."""
    parent = state = None
    for name, value in headers:
        if name == TRACEPARENT_HEADER:
            parent = value
        elif name == TRACESTATE_HEADER:
            state = value
    if parent is None:
        return None
    return trace_context(
        parent.decode(errors="replace"), state.decode(errors="replace") if state else ""
    )
