"""The envelope every Loopline event travels in, and the base of every payload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar, cast
from uuid import UUID, uuid4, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny


def utcnow() -> datetime:
    """The current time, aware and in UTC."""
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every event payload: frozen, and named by the class variables below."""

    model_config = ConfigDict(frozen=True)

    TYPE: ClassVar[str]
    """The event's name on the wire (the envelope's `type`)."""
    VERSION: ClassVar[int] = 1
    """The current schema version; older versions are upcast on read."""


def derived_id(cause: UUID, producer: str, index: int = 0) -> UUID:
    """The id of the `index`-th event `producer` emits in answer to event `cause`: the same
    every time the cause is handled, so a repeat is recognised (and a consumer can tell which
    event answers which)."""
    return uuid5(cause, f"{producer}/{index}")


class MemoryOutput(Payload):
    """Base of the events memory alone writes about a run (its contexts and its end).

    They journal memory's folding: which of the run's inputs it folded, in which order, since
    its previous such event. Inputs come from several topics, so their order in the log is
    not the order memory read them in; a replay follows this journal instead, and rebuilds
    exactly the state memory holds.
    """

    folded: tuple[UUID, ...] = Field(
        default=(),
        description="Ids of the run's inputs memory folded since its previous context or "
        "result, in the order it folded them (the last one caused this event).",
    )


class TraceContext(BaseModel):
    """W3C trace context, so the steps of a run form one trace."""

    model_config = ConfigDict(frozen=True)

    traceparent: str = Field(description="W3C traceparent header value.", max_length=128)
    tracestate: str = Field(default="", description="W3C tracestate header value.", max_length=512)


class Signature(BaseModel):
    """Who signed an envelope, and the HMAC-SHA256 that proves it."""

    model_config = ConfigDict(frozen=True)

    key_id: str = Field(min_length=1, max_length=128, description="The signer's key id.")
    mac: str = Field(
        min_length=1, max_length=128, description="HMAC-SHA256 of the signed bytes, base64."
    )


P = TypeVar("P", bound=Payload)
Q = TypeVar("Q", bound=Payload)


class Envelope(BaseModel, Generic[P]):
    """One event of one run: who, when, what caused it, and its payload."""

    model_config = ConfigDict(frozen=True)

    event_id: UUID = Field(default_factory=uuid4, description="Unique id of this event.")
    type: str = Field(description="The payload's event type, e.g. `GoalSubmitted`.")
    schema_version: int = Field(default=1, ge=1, description="Version of the payload's schema.")
    run_id: str = Field(
        min_length=1, max_length=128, description="The run this event belongs to; the Kafka key."
    )
    seq: int = Field(default=0, ge=0, description="The run's step counter, assigned by memory.")
    tenant: str = Field(
        default="default", min_length=1, max_length=128, description="Owner of the run."
    )
    occurred_at: AwareDatetime = Field(
        default_factory=utcnow, description="When the event happened (aware, UTC)."
    )
    causation_id: UUID | None = Field(
        default=None, description="The event that caused this one, if any."
    )
    producer: str = Field(
        default="external", max_length=128, description="The service or client that produced it."
    )
    trace: TraceContext | None = Field(default=None, description="Trace context of the run.")
    payload: SerializeAsAny[P] = Field(description="The event's own fields.")
    signature: Signature | None = Field(
        default=None,
        description="Set on goals and commands: who sent it, proven (see loopline_events "
        "`SigningKey`); memory refuses one whose signer may not act for its tenant.",
    )

    @classmethod
    def of(
        cls,
        payload: Q,
        *,
        run_id: str,
        producer: str,
        seq: int = 0,
        tenant: str = "default",
        causation_id: UUID | None = None,
        trace: TraceContext | None = None,
        event_id: UUID | None = None,
    ) -> Envelope[Q]:
        """Wrap `payload` in a new envelope (a fresh event id unless one is given)."""
        model = cast("type[Envelope[Q]]", Envelope[type(payload)])  # type: ignore[misc]
        return model(
            event_id=event_id or uuid4(),
            type=payload.TYPE,
            schema_version=payload.VERSION,
            run_id=run_id,
            seq=seq,
            tenant=tenant,
            causation_id=causation_id,
            producer=producer,
            trace=trace,
            payload=payload,
        )

    def follow(
        self, payload: Q, *, producer: str, seq: int | None = None, index: int = 0
    ) -> Envelope[Q]:
        """A new event of the same run, caused by this one.

        Its id is derived from this event's id, the producer and `index` (the position among
        the outputs this event causes): handling a redelivered event again yields the same ids,
        so consumers recognise the duplicates.
        """
        return Envelope.of(
            payload,
            run_id=self.run_id,
            producer=producer,
            seq=self.seq if seq is None else seq,
            tenant=self.tenant,
            causation_id=self.event_id,
            trace=self.trace,
            event_id=derived_id(self.event_id, producer, index),
        )

    @property
    def is_complete(self) -> bool:
        """Whether the record gave the event's id and time (Loopline's producers always do):
        a hand-written one may leave them out, and each read would then give it others."""
        return {"event_id", "occurred_at"} <= self.model_fields_set

    def describe(self) -> dict[str, Any]:
        """The envelope's fields without the payload, for logs and error reports."""
        return self.model_dump(mode="json", exclude={"payload"})
