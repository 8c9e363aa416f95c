"""What happens to one record, the same in both bus implementations.

decode → handle (with retries for retryable errors) → encode the outputs, or dead-letter the
record with its reason. Nothing here raises: every record ends handled or dead-lettered. The
middleware sees each stage (see _middleware.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

from loopline_events import (
    RETRY_TOPICS,
    BudgetExceededError,
    DeadLettered,
    DeadLetterKind,
    Envelope,
    EventDecodeError,
    ForbiddenError,
    LooplineError,
    OrphanError,
    SigningKey,
    TopicSpec,
    TraceContext,
    TransientError,
    decode_event,
    dlq_name,
    encode_event,
)
from loopline_runtime import redact

from loopline_bus._api import Handler, SubscriptionOptions
from loopline_bus._middleware import Handle, Middleware
from loopline_bus._partitioner import partition_for
from loopline_bus._records import (
    Encoded,
    Outbound,
    RawRecord,
    encode_outbound,
    trace_from_headers,
)

log = logging.getLogger("loopline.bus")

ADMITTED_HEADER = "loopline-admitted-from"
"""On a record re-published in its canonical form: where it had landed (`partition:offset`)."""
ADMITTED_IDS = UUID("0b6f3f7e-3f5e-4d8e-a1c4-6f7d2b9e8a55")
"""Namespace of the ids given to events that came without one."""


def canonical(event: Envelope[Any], record: RawRecord) -> Envelope[Any]:
    """`event` with an id derived from where it lies in the log and, unless it says, the time
    it was written there: the same whoever reads it, however often."""
    fixed: dict[str, Any] = {}
    if "event_id" not in event.model_fields_set:
        where = f"{record.topic}/{record.partition}/{record.offset}"
        fixed["event_id"] = uuid5(ADMITTED_IDS, where)
    if "occurred_at" not in event.model_fields_set and record.timestamp_ms is not None:
        fixed["occurred_at"] = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    return event.model_copy(update=fixed)


DLQ_SUFFIX = dlq_name("")
RETRY_TOPIC_NAMES = frozenset(t.name for t in RETRY_TOPICS)


class Dispatcher:
    """Turns one raw record into the encoded outputs to publish (or its dead letter)."""

    def __init__(
        self,
        *,
        group: str,
        handler: Handler,
        options: SubscriptionOptions,
        max_bytes: dict[str, int],
        producer: str,
        middleware: Sequence[Middleware] = (),
        partitions: Callable[[str], int | None] = lambda _: None,
        signing_key: SigningKey | None = None,
    ):
        self.signing_key = signing_key
        """Signs the goals and commands the handler returns."""
        self.partitions = partitions
        """Partitions of a logical topic, as the cluster says (None: unknown yet)."""
        self.group = group
        self.handler = handler
        self.options = options
        self.max_bytes = max_bytes
        self.producer = producer
        self.middleware = tuple(middleware)
        handle: Handle = self._call_handler
        for m in reversed(self.middleware):  # the first middleware is the outermost
            handle = m.wrap(handle, group)
        self._handle_once = handle

    async def _call_handler(self, record: RawRecord, event: Envelope[Any]) -> Sequence[Outbound]:
        return await self.handler(event)

    async def dispatch(self, record: RawRecord) -> list[Encoded]:
        limit = self.max_bytes.get(record.topic)
        if limit is not None and len(record.value) > limit:
            # Checked before decoding: an oversized message is not worth parsing.
            event_type = _header(record, "event-type")
            self._decoded(record, event_type)
            return self.dead_letter(
                record,
                DeadLetterKind.OVERSIZED,
                f"message of {len(record.value)} bytes exceeds {record.topic}'s {limit}",
                event_type,
            )
        try:
            event = decode_event(record.value)
        except EventDecodeError as exc:
            self._decoded(record, exc.event_type)
            kind = DeadLetterKind(exc.kind.value)
            return self.dead_letter(record, kind, str(exc), exc.event_type)
        self._decoded(record, event.type)
        routed = self._route(record, event)
        if routed is not None:
            return routed
        return await self._handle(record, event)

    def _route(self, record: RawRecord, event: Envelope[Any]) -> list[Encoded] | None:
        """The record re-published in its canonical form, if it is not in it (see
        `SubscriptionOptions.admit_foreign`)."""
        if not self.options.admit_foreign:
            return None
        count = self.partitions(record.topic)
        key = event.run_id.encode()
        misplaced = count is not None and partition_for(key, count) != record.partition
        complete = event.is_complete
        if not misplaced and complete:
            return None
        if _header(record, ADMITTED_HEADER) is not None:
            log.warning(  # admitted once already: the topic changed size meanwhile
                "%s of run %s is still outside its partition", event.type, event.run_id
            )
            return None
        log.info(
            "admitting %s of run %s from %s[%d]@%d (%s)",
            event.type,
            event.run_id,
            record.topic,
            record.partition,
            record.offset,
            "moved to its run's partition" if complete else "id and time fixed",
        )
        value = record.value if complete else encode_event(canonical(event, record))
        where = f"{record.partition}:{record.offset}".encode()
        headers = (*record.headers, (ADMITTED_HEADER, where))
        return [Encoded(record.topic, key, value, headers)]

    def _decoded(self, record: RawRecord, event_type: str | None) -> None:
        for m in self.middleware:
            m.after_decode(record, event_type)

    async def _handle(self, record: RawRecord, event: Envelope[Any]) -> list[Encoded]:
        for attempt in range(1, self.options.max_attempts + 1):
            try:
                outputs = await self._handle_once(record, event)
                return self._encode(record, event, outputs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retryable = isinstance(exc, LooplineError) and exc.retryable
                if retryable and attempt < self.options.max_attempts:
                    log.warning("retrying %s after %r (attempt %d)", event.type, exc, attempt)
                    for m in self.middleware:
                        m.before_retry(record, event, exc, attempt)
                    await asyncio.sleep(self.options.backoff.after(exc, attempt))
                    continue
                kind = _kind_of(exc)
                log.exception("handler failed on %s of run %s", event.type, event.run_id)
                return self.dead_letter(
                    record,
                    kind,
                    f"{type(exc).__name__}: {exc}",
                    event.type,
                    attempt,
                    trace=event.trace,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _encode(
        self, record: RawRecord, event: Envelope[Any], outputs: Sequence[Outbound]
    ) -> list[Encoded]:
        encoded = [encode_outbound(out, event, self.signing_key) for out in outputs]
        for item in encoded:
            limit = self.max_bytes.get(item.topic)
            if limit is not None and len(item.value) > limit:
                return self.dead_letter(
                    record,
                    DeadLetterKind.OVERSIZED,
                    f"handler output of {len(item.value)} bytes for {item.topic} "
                    f"exceeds its limit of {limit}",
                    event.type,
                    trace=event.trace,
                )
        return encoded

    def dead_letter(
        self,
        record: RawRecord,
        kind: DeadLetterKind,
        error: str,
        event_type: str | None = None,
        attempts: int = 1,
        *,
        trace: TraceContext | None = None,
    ) -> list[Encoded]:
        for m in self.middleware:
            m.after_dead_letter(record, kind)
        if record.topic.endswith(DLQ_SUFFIX) or record.topic in RETRY_TOPIC_NAMES:
            # A dead letter (or a retry, which is one) that cannot be handled stays where it
            # is: nothing is lost, and there is no dead-letter topic of a dead-letter topic.
            if kind is DeadLetterKind.TRANSIENT:
                # Unless the failure may pass (recovery's ledger is unreachable): then the
                # batch is handled again, so that the entry is recorded once it can be.
                raise DeadLetterNotHandledError(
                    f"{record.topic}[{record.partition}]@{record.offset}: {error}"
                )
            log.error(
                "cannot handle dead letter %s[%d]@%d (%s): %s",
                record.topic,
                record.partition,
                record.offset,
                kind.value,
                error,
            )
            return []
        log.warning(
            "dead-lettering %s[%d]@%d (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            kind.value,
            error,
        )
        run_id = record.key.decode(errors="replace")[:128] if record.key else "-"
        # The dead-letter topic takes twice its source's limit, base64 grows bytes by a third:
        # a message within its limit is kept whole; one over it (compressed batches pass the
        # broker's check) keeps its first limit of bytes, its size and its digest, so that its
        # dead letter always fits.
        cap = self.max_bytes.get(record.topic, TopicSpec("", "").max_message_bytes)
        truncated = len(record.value) > cap
        kept = record.value[:cap] if truncated else record.value
        if truncated:
            error = f"{error} (the dead letter keeps its first {cap} of {len(record.value)} bytes)"
        letter = DeadLettered(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer_group=self.group,
            kind=kind,
            error=redact(error)[:4000],
            # Base64Bytes fields validate base64 text: hand them the originals encoded.
            original_key=base64.b64encode(record.key) if record.key is not None else None,
            original_value=base64.b64encode(kept),
            original_size=len(record.value) if truncated else None,
            original_sha256=hashlib.sha256(record.value).hexdigest() if truncated else None,
            original_headers=[(k, base64.b64encode(v)) for k, v in record.headers],
            event_type=event_type,
            attempts=attempts,
        )
        envelope = Envelope.of(
            letter,
            run_id=run_id or "-",
            producer=self.producer,
            # The dead letter stays in its run's trace.
            trace=trace or trace_from_headers(record.headers),
        )
        return [encode_outbound(Outbound(dlq_name(record.topic), envelope))]


class DeadLetterNotHandledError(TransientError):
    """A dead letter failed transiently: its batch must be handled again, not skipped."""


def _kind_of(error: Exception) -> DeadLetterKind:
    """How a handler error is dead-lettered: by what the error says of itself."""
    if isinstance(error, BudgetExceededError):
        return DeadLetterKind.BUDGET
    if isinstance(error, OrphanError):
        return DeadLetterKind.ORPHAN
    if isinstance(error, ForbiddenError):
        return DeadLetterKind.FORBIDDEN
    if isinstance(error, LooplineError) and error.retryable:
        return DeadLetterKind.TRANSIENT
    return DeadLetterKind.HANDLER


def _header(record: RawRecord, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode(errors="replace")[:128]
    return None
