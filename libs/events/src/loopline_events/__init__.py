"""Loopline's event contracts: the envelope, the events of the agent loop, and the topics.

This package depends on pydantic only; every service speaks through these models.
"""

from loopline_events._codec import (
    EVENT_TYPES,
    UPCASTERS,
    DecodeErrorKind,
    EventDecodeError,
    decode_event,
    encode_event,
)
from loopline_events._dead_letters import RETRIES_HEADER, DeadLettered, DeadLetterKind
from loopline_events._envelope import Envelope, Payload, TraceContext, utcnow
from loopline_events._forks import ForkRecorded, RunForked
from loopline_events._runs import (
    Budget,
    CancelRun,
    FailureReason,
    GoalSubmitted,
    RunCancelled,
    RunCompleted,
    RunFailed,
)
from loopline_events._schemas import (
    IncompatibleSchemaError,
    compatibility_problems,
    generate_schemas,
    render,
    schema_file_name,
    write_schemas,
)
from loopline_events._steps import (
    ContextAssembled,
    Message,
    ModelDecided,
    ModelFailed,
    TokenUsage,
    ToolCall,
    ToolSpec,
)
from loopline_events._tools import ToolCallFailed, ToolCallSucceeded, ToolError, ToolErrorKind
from loopline_events._topics import (
    ALL_TOPICS,
    CONTEXTS,
    CONTROL,
    DECISIONS,
    GOALS,
    LOOP_TOPICS,
    OBSERVATIONS,
    RESULTS,
    RETRY_TOPICS,
    TopicSpec,
    dlq_name,
    topic_of,
    topic_spec,
)

__all__ = [
    "ALL_TOPICS",
    "CONTEXTS",
    "CONTROL",
    "DECISIONS",
    "EVENT_TYPES",
    "GOALS",
    "LOOP_TOPICS",
    "OBSERVATIONS",
    "RESULTS",
    "RETRIES_HEADER",
    "RETRY_TOPICS",
    "UPCASTERS",
    "Budget",
    "CancelRun",
    "ContextAssembled",
    "DeadLetterKind",
    "DeadLettered",
    "DecodeErrorKind",
    "Envelope",
    "EventDecodeError",
    "FailureReason",
    "ForkRecorded",
    "GoalSubmitted",
    "IncompatibleSchemaError",
    "Message",
    "ModelDecided",
    "ModelFailed",
    "Payload",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunForked",
    "TokenUsage",
    "ToolCall",
    "ToolCallFailed",
    "ToolCallSucceeded",
    "ToolError",
    "ToolErrorKind",
    "ToolSpec",
    "TopicSpec",
    "TraceContext",
    "compatibility_problems",
    "decode_event",
    "dlq_name",
    "encode_event",
    "generate_schemas",
    "render",
    "schema_file_name",
    "topic_of",
    "topic_spec",
    "utcnow",
    "write_schemas",
]
