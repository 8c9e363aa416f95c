"""Reading as little of a record as the watchdog needs.

The watchdog sees every event of every run, so it must not pay for decoding them: a context
carries the whole conversation. Loopline encodes the envelope's fields before its payload, so
the event id, type, step and tenant are read from the record's first bytes, and a tool
result's call id (its payload's first field) from the bytes after them; only goals (small,
once per run) and waits (small, rare) are decoded whole, for their agent, deadline or time. A
record in another shape (from a foreign producer) is decoded whole; one that is not an event
at all is not the watchdog's to judge (the services dead-letter it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from loopline_events import (
    ApprovalDecided,
    ApprovalRequested,
    DelegationStarted,
    EventDecodeError,
    GoalSubmitted,
    ModelCallDelayed,
    RunForked,
    ToolCallFailed,
    ToolCallSucceeded,
    decode_event,
)

from loopline_recovery.domain.watch import DRIVING, Kind, Location, Redriven, Seen

REDRIVE_HEADER = "loopline-redrive"
"""Set on a record the watchdog re-published (its value: which try): it is not progress."""
REDRIVE_OF_HEADER = "loopline-redrive-of"
"""Where the re-published record lies in the log (`topic:partition:offset`): a watchdog that
reads the copy learns which try its run is at, even if the one that re-drove it crashed
before saving its table."""

KINDS: dict[str, Kind] = {
    "GoalSubmitted": Kind.GOAL,
    "RunForked": Kind.GOAL,
    "ContextAssembled": Kind.CONTEXT,
    "ModelDecided": Kind.DECISION,
    "ModelFailed": Kind.DECISION,
    "ToolCallSucceeded": Kind.OBSERVATION,
    "ToolCallFailed": Kind.OBSERVATION,
    "RunCompleted": Kind.RESULT,
    "RunFailed": Kind.RESULT,
    "RunCancelled": Kind.RESULT,
    "CancelRun": Kind.CONTROL,
    "FailRun": Kind.CONTROL,
    "ForkRecorded": Kind.CONTROL,
    "ModelCallDelayed": Kind.WAITING,
    "DelegationStarted": Kind.DELEGATING,
    "ApprovalRequested": Kind.HELD,
    "ApprovalDecided": Kind.ANSWERED,
}

DECODED = (Kind.GOAL, Kind.WAITING, Kind.DELEGATING, Kind.HELD, Kind.ANSWERED)
"""Kinds read whole: small, and their payload matters."""

_STRING = rb'"((?:[^"\\]|\\.)*)"'
_HEAD = re.compile(
    rb'\{"event_id":"([0-9a-f-]{36})","type":"(\w+)","schema_version":\d+,"run_id":'
    + _STRING
    + rb',"seq":(\d+),"tenant":'
    + _STRING
)
_HEAD_BYTES = 4096
"""Room for the envelope's head: ids, and a run id and tenant of 128 characters, escaped."""
_CALL_ID = re.compile(rb'"payload":\{"call_id":' + _STRING)
"""A tool result's call id: the payload's first field. The first match is the envelope's own
key: within a string, a quote is escaped."""
_REST_BYTES = 4096
"""Room after the head for the rest of the envelope (times, ids, producer, trace)."""


def peek(
    location: Location, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
) -> Seen | None:
    """What the watchdog needs of a record; None for records it does not follow."""
    redrive = _redrive(headers)
    if redrive is _NOT_FOLLOWED:
        return None
    seen = _peek(location, value)
    if seen is not None and redrive is not None:
        if seen.kind not in DRIVING:
            return None
        seen.redrive = redrive
    return seen


def _peek(location: Location, value: bytes) -> Seen | None:
    head = _HEAD.match(value, 0, _HEAD_BYTES)
    if head is None:
        return _decoded(location, value)
    kind = KINDS.get(head.group(2).decode())
    if kind is None:
        return None
    if kind in DECODED:
        return _decoded(location, value)
    try:
        call_id = None
        if kind is Kind.OBSERVATION:
            found = _CALL_ID.search(value, head.end(), head.end() + _REST_BYTES)
            if found is None:
                return _decoded(location, value)
            call_id = _text(found.group(1))
        return Seen(
            kind=kind,
            run_id=_text(head.group(3)),
            seq=int(head.group(4)),
            event_id=head.group(1).decode(),
            location=location,
            tenant=_text(head.group(5)),
            call_id=call_id,
        )
    except ValueError:
        # A head that only looks like an envelope (a bad escape, bytes that are not UTF-8):
        # decoding the record whole decides, and what is not an event is not followed.
        return _decoded(location, value)


_NOT_FOLLOWED = Redriven(0, Location("", 0, 0))


def _redrive(headers: Sequence[tuple[str, bytes]]) -> Redriven | None:
    """The re-drive a record's headers describe; _NOT_FOLLOWED for a copy that does not say
    what it copies (it is no progress, and tells nothing)."""
    names = dict(headers)
    if REDRIVE_HEADER not in names:
        return None
    try:
        tries = int(names[REDRIVE_HEADER])
        topic, partition, offset = names[REDRIVE_OF_HEADER].decode().rsplit(":", 2)
        return Redriven(tries, Location(topic, int(partition), int(offset)))
    except (KeyError, ValueError):
        return _NOT_FOLLOWED


def _text(raw: bytes) -> str:
    """A JSON string's content, unescaped (escapes are rare: only then is JSON parsed)."""
    return raw.decode() if b"\\" not in raw else str(json.loads(b'"' + raw + b'"'))


def _decoded(location: Location, value: bytes) -> Seen | None:
    try:
        event = decode_event(value)
    except EventDecodeError:
        return None
    if not event.is_complete:
        return None  # hand-written, without id or time: memory admits a complete copy of it
    kind = KINDS.get(event.type)
    if kind is None:
        return None
    payload = event.payload
    agent, deadline_s, until, call_id, on_timeout = None, None, None, None, None
    if isinstance(payload, GoalSubmitted | RunForked):
        agent, deadline_s = payload.agent, payload.budget.deadline_s
    if isinstance(payload, ModelCallDelayed | DelegationStarted | ApprovalRequested):
        until = payload.until.timestamp()
    if isinstance(payload, ApprovalRequested):
        on_timeout = payload.on_timeout
    if isinstance(
        payload, ToolCallSucceeded | ToolCallFailed | ApprovalRequested | ApprovalDecided
    ):
        call_id = payload.call_id
    return Seen(
        kind=kind,
        run_id=event.run_id,
        seq=event.seq,
        event_id=str(event.event_id),
        location=location,
        tenant=event.tenant,
        agent=agent,
        occurred_at=event.occurred_at.timestamp() if kind is Kind.GOAL else None,
        deadline_s=deadline_s,
        until=until,
        call_id=call_id,
        on_timeout=on_timeout,
    )
