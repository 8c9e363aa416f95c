"""Every topic Loopline uses, with its settings, declared in one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MIB = 1024 * 1024
FOREVER = -1
HOUR_MS = 3600 * 1000
WEEK_MS = 7 * 24 * 3600 * 1000


class TopicClass(StrEnum):
    """What a topic holds, which decides what losing it would cost and so how it is kept."""

    RUN = "run"
    """The runs' own record (goals, decisions, tool results, control, results): kept forever;
    replay, rebuild and memory's recovery read it."""
    DERIVED = "derived"
    """Rebuilt from the run topics (contexts): kept a week."""
    DEAD_LETTER = "dead-letter"
    """Messages that could not be handled, with their original bytes: kept forever."""
    RETRY = "retry"
    """Dead letters waiting for their retry: kept a week."""
    STREAM = "stream"
    """Text shown while a model writes it; the durable record is elsewhere: kept an hour."""

    @property
    def kept_forever(self) -> bool:
        """Whether a topic of this class must never delete a record."""
        return self in (TopicClass.RUN, TopicClass.DEAD_LETTER)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A logical topic; the bus adds the namespace prefix."""

    name: str
    description: str
    events: tuple[str, ...] = ()
    """The event types published to it."""
    partitions: int = 12
    retention_ms: int = FOREVER
    max_message_bytes: int = MIB
    kind: TopicClass = TopicClass.RUN
    """Its class: how long it is kept and how many copies the cluster keeps (settings)."""

    @property
    def dlq(self) -> TopicSpec:
        """The dead-letter topic of this topic."""
        return TopicSpec(
            name=dlq_name(self.name),
            description=f"Messages of {self.name} that could not be handled.",
            events=("DeadLettered",),
            partitions=self.partitions,
            retention_ms=FOREVER,
            # A dead letter carries the original bytes, base64-encoded, and its error.
            max_message_bytes=2 * self.max_message_bytes,
            kind=TopicClass.DEAD_LETTER,
        )

    def config(self) -> dict[str, str]:
        """Broker-side topic configuration (replication aside: it comes from settings)."""
        return {
            "retention.ms": str(self.retention_ms),
            # A topic kept forever is kept whatever its size; the others by time alone.
            "retention.bytes": str(FOREVER),
            "max.message.bytes": str(self.max_message_bytes),
            # Never "compact": every record of a run has the run's key, so compaction would
            # keep only each run's last event.
            "cleanup.policy": "delete",
        }


def dlq_name(topic: str) -> str:
    """The dead-letter topic of `topic`."""
    return f"{topic}.dlq"


GOALS = TopicSpec("agent.goals", "Runs asked for by users.", ("GoalSubmitted", "RunForked"))
CONTROL = TopicSpec(
    "agent.control",
    "Commands to runs (cancel, fail, a person's approval or message), and their lineage.",
    ("CancelRun", "FailRun", "ForkRecorded", "ApprovalDecided", "RunSteered"),
)
CONTEXTS = TopicSpec(
    "agent.contexts",
    "What the model sees at each step (derived from the other topics).",
    ("ContextAssembled",),
    retention_ms=WEEK_MS,
    kind=TopicClass.DERIVED,
)
DECISIONS = TopicSpec(
    "agent.decisions",
    "The model's choices, the waits before them, the guards that set one aside, and the "
    "held calls a person approved.",
    ("ModelDecided", "ModelFailed", "ModelCallDelayed", "GuardTripped", "ToolCallApproved"),
)
OBSERVATIONS = TopicSpec(
    "agent.observations",
    "Outcomes of tool calls, the waits of delegated and held ones, and the guards that "
    "stopped one.",
    (
        "ToolCallSucceeded",
        "ToolCallFailed",
        "DelegationStarted",
        "ApprovalRequested",
        "GuardTripped",
    ),
)
RESULTS = TopicSpec(
    "agent.results",
    "How runs ended, and goals not taken.",
    ("RunCompleted", "RunFailed", "RunCancelled", "GoalRejected"),
)

LOOP_TOPICS: tuple[TopicSpec, ...] = (GOALS, CONTROL, CONTEXTS, DECISIONS, OBSERVATIONS, RESULTS)
"""The topics of the agent loop."""

OPERATIONS = TopicSpec(
    "agent.operations",
    "Operators' commands to a service about its own records (redrive a dead letter), keyed "
    "by the run concerned; the service that owns the records carries them out.",
    ("RedriveDeadLetter",),
    partitions=3,
)
"""Commands about the services' records rather than a run's course. A command that cannot be
handled lands on its `.dlq`, which no one consumes: it is logged, and asked again."""

RETRY_TOPICS: tuple[TopicSpec, ...] = tuple(
    TopicSpec(
        f"agent.retry.{tier}",
        f"Dead letters waiting for retry number {tier} (or later) of their message; recovery "
        "re-publishes each to its source topic once its `not_before` has passed.",
        ("DeadLettered",),
        retention_ms=WEEK_MS,
        # A dead letter: the original bytes base64-encoded, its error and its envelope.
        max_message_bytes=3 * MIB,
        kind=TopicClass.RETRY,
    )
    for tier in (1, 2, 3)
)
"""Delay tiers of recovery's retries: every entry of a tier waits as long, so the head of a
partition is always the first due and a waiting retry blocks nothing due earlier."""

STREAM = TopicSpec(
    "agent.stream",
    "Partial model output while it is written (ModelTextDelta), for clients to show as it "
    "comes. Not part of a run's history: no service consumes it, replay never reads it, and "
    "it is kept an hour.",
    ("ModelTextDelta",),
    retention_ms=HOUR_MS,
    kind=TopicClass.STREAM,
)
"""Live text of the steps in progress; the durable record stays `ModelDecided`."""

ALL_TOPICS: tuple[TopicSpec, ...] = (
    LOOP_TOPICS
    + tuple(t.dlq for t in LOOP_TOPICS)
    + RETRY_TOPICS
    + (OPERATIONS, OPERATIONS.dlq, STREAM)
)
"""Every topic: the loop's, their dead-letter topics, recovery's retry tiers, operations and
the stream."""


def topic_of(event_type: str) -> TopicSpec | None:
    """The topic an event type is published to (None for dead letters)."""
    for spec in (*LOOP_TOPICS, OPERATIONS):
        if event_type in spec.events:
            return spec
    return None


def topic_spec(name: str) -> TopicSpec:
    """The declaration of a logical topic name."""
    for spec in ALL_TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"no topic named {name!r} is declared")
