"""Middleware: the hooks around what the bus does with every message, as in dramatiq.

Both buses run every record through the same Dispatcher and every publication through the same
calls, so a middleware sees the same things on Kafka and in memory. Metrics and tracing are
middleware; retries and dead letters stay in the Dispatcher because delivery depends on them.

Hooks run on the hot path of every event: keep them cheap, and never raise from them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from loopline_events import DeadLetterKind, Envelope

from loopline_bus._records import Encoded, Outbound, RawRecord

Handle = Callable[[RawRecord, Envelope[Any]], Awaitable[Sequence[Outbound]]]
"""One try of handling a decoded record: the handler, wrapped by the middleware."""

Lag = Mapping[tuple[str, int], int]
"""Messages not yet consumed, by (logical topic, partition) of one consumer's assignment."""


class Middleware:
    """Every hook does nothing here; a middleware overrides the ones it needs."""

    def wrap(self, handle: Handle, group: str) -> Handle:
        """Wrap each try of the handler of `group` (called once, when subscribing)."""
        return handle

    def after_decode(self, record: RawRecord, event_type: str | None) -> None:
        """A record was read; `event_type` is what it claims to be (None if unreadable)."""

    def before_retry(
        self, record: RawRecord, event: Envelope[Any], error: Exception, attempt: int
    ) -> None:
        """Try `attempt` failed with a retryable error; the handler is about to run again."""

    def after_dead_letter(self, record: RawRecord, kind: DeadLetterKind) -> None:
        """A record could not be handled and goes to its topic's dead-letter topic."""

    def after_publish(self, items: Sequence[Encoded]) -> None:
        """The broker acknowledged these messages."""

    def after_poll(self, group: str, member: int, lag: Lag) -> None:
        """A consumer (`member`, unique in the process) of `group` polled; its whole lag.

        An empty mapping when it stops: it owns no partition any more.
        """
