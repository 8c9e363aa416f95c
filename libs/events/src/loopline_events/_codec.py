"""Bytes to events and back: the one place an event type is looked up and upcast."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from loopline_events._dead_letters import DeadLettered
from loopline_events._envelope import Envelope, Payload
from loopline_events._errors import LooplineError
from loopline_events._forks import ForkRecorded, RunForked
from loopline_events._humans import (
    ApprovalDecided,
    ApprovalRequested,
    GuardTripped,
    RunSteered,
    ToolCallApproved,
)
from loopline_events._operations import RedriveDeadLetter
from loopline_events._runs import (
    CancelRun,
    FailRun,
    GoalRejected,
    GoalSubmitted,
    RunCancelled,
    RunCompleted,
    RunFailed,
)
from loopline_events._steps import (
    ContextAssembled,
    ModelCallDelayed,
    ModelDecided,
    ModelFailed,
    upcast_context_v1_to_v2,
)
from loopline_events._streaming import ModelTextDelta
from loopline_events._tools import DelegationStarted, ToolCallFailed, ToolCallSucceeded

EVENT_TYPES: dict[str, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        GoalSubmitted,
        RunForked,
        CancelRun,
        FailRun,
        ForkRecorded,
        ContextAssembled,
        ModelDecided,
        ModelFailed,
        ModelCallDelayed,
        ModelTextDelta,
        ToolCallSucceeded,
        ToolCallFailed,
        DelegationStarted,
        ApprovalRequested,
        ApprovalDecided,
        ToolCallApproved,
        RunSteered,
        GuardTripped,
        RunCompleted,
        RunFailed,
        RunCancelled,
        GoalRejected,
        DeadLettered,
        RedriveDeadLetter,
    )
}
"""Every event type Loopline knows, by its wire name."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[tuple[str, int], Upcaster] = {
    (ContextAssembled.TYPE, 1): upcast_context_v1_to_v2,
}
"""(event type, version) -> a function turning that version's payload into the next one's.

Register one as `upcast_v1_to_v2` when a payload changes incompatibly and its VERSION goes up.
"""

# One parametrised envelope per type, built once: validation is then a single call.
_ENVELOPES: dict[str, type[Envelope[Any]]] = {
    name: Envelope[cls]  # type: ignore[valid-type]
    for name, cls in EVENT_TYPES.items()
}


class DecodeErrorKind(StrEnum):
    """Why bytes did not become an event."""

    UNDECODABLE = "undecodable"
    SCHEMA = "schema"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_VERSION = "unknown_version"


class EventDecodeError(LooplineError, ValueError):
    """Bytes that are not a valid Loopline event; never retryable."""

    def __init__(self, kind: DecodeErrorKind, message: str, event_type: str | None = None):
        super().__init__(f"{kind.value}: {message}", retryable=False)
        self.kind = kind
        self.event_type = event_type


def encode_event(event: Envelope[Any]) -> bytes:
    """The event as compact JSON bytes."""
    return event.__pydantic_serializer__.to_json(event)


def decode_event(raw: bytes | str) -> Envelope[Payload]:
    """Validate `raw` as an event, upcasting an older payload version to the current one."""
    try:
        data = from_json(raw)
    except ValueError as exc:
        raise EventDecodeError(DecodeErrorKind.UNDECODABLE, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventDecodeError(DecodeErrorKind.SCHEMA, "an event is a JSON object")
    name = data.get("type")
    if not isinstance(name, str) or name not in _ENVELOPES:
        raise EventDecodeError(DecodeErrorKind.UNKNOWN_TYPE, f"unknown event type {name!r}")
    data = _upcast(name, data)
    try:
        return _ENVELOPES[name].model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise EventDecodeError(DecodeErrorKind.SCHEMA, errors, name) from None


def _upcast(name: str, data: dict[str, Any]) -> dict[str, Any]:
    current = EVENT_TYPES[name].VERSION
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise EventDecodeError(DecodeErrorKind.SCHEMA, f"bad schema_version {version!r}", name)
    if version > current:
        raise EventDecodeError(
            DecodeErrorKind.UNKNOWN_VERSION,
            f"{name} v{version} is newer than this reader's v{current}",
            name,
        )
    payload = data.get("payload")
    while version < current:
        if not isinstance(payload, dict):
            break  # validation below reports it
        payload = UPCASTERS[(name, version)](payload)
        version += 1
    return {**data, "payload": payload, "schema_version": current}
