"""The bus interface: what services publish and how they subscribe."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopline_events import ALL_TOPICS, Backoff, Envelope, SigningKey, TopicSpec
from loopline_runtime import register_probe, unregister_probe

from loopline_bus._metrics import MetricsMiddleware
from loopline_bus._middleware import Middleware
from loopline_bus._records import Encoded, Outbound
from loopline_bus._tracing import TracingMiddleware

Handler = Callable[[Envelope[Any]], Awaitable[Sequence[Outbound]]]
"""Handles one event; returns the events to publish. Offsets are committed only after the
handler returned and every output was acknowledged by the broker."""


HANDLER_BACKOFF = Backoff(base_s=0.05, cap_s=5.0)
"""Waits between in-place tries of a handler: short, the message holds its partition."""


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """How a subscription consumes."""

    max_batch: int = 500
    """Most records fetched (and committed) at once."""
    concurrency: int = 64
    """Most runs (keys) handled at the same time within a batch; one key stays in order."""
    max_attempts: int = 3
    """Tries of a retryable handler error before the message is dead-lettered."""
    backoff: Backoff = HANDLER_BACKOFF
    """Waits between those tries (a `retry_after` the error carries wins)."""
    from_beginning: bool = True
    """Where a new group starts: the earliest offset (True) or the end (False)."""
    before_publish: Callable[[], Awaitable[None]] | None = None
    """Called once every record of a batch is handled, before the batch's outputs are
    published: where a handler makes the writes of a whole batch durable at once. Should it
    raise, nothing of the batch is published or committed and the batch is handled again."""
    on_reassigned: Callable[[], None] | None = None
    """Called, between two batches, after partitions moved to or from this consumer: what a
    handler cached about the runs of its partitions may be stale from now on."""
    admit_foreign: bool = False
    """Records may come from any Kafka client, not only Loopline's: one that landed outside
    its run's partition (librdkafka-based clients such as kcat partition keys by CRC32, not
    murmur2) or that leaves the envelope's id or time to its reader is re-published in its
    canonical form — at its run's partition, with an id and time fixed once — instead of
    being handled as it is. One consumer then owns all of a run's events, and every reader
    of the log (replays included) reads the same event."""


class Subscription(ABC):
    """A running consumer: a group reading topics and handing each event to a handler."""

    @abstractmethod
    async def start(self) -> None:
        """Join the group and begin consuming in the background."""

    @abstractmethod
    async def stop(self) -> None:
        """Finish the batch in hand, commit it, leave the group."""

    @abstractmethod
    async def wait_assigned(self, timeout: float = 30.0) -> None:
        """Return once the group has given this consumer its partitions."""

    @abstractmethod
    def readiness(self) -> str | None:
        """None once started and given its share of the group (maybe no partition); else why
        it is not consuming yet."""


def default_middleware() -> tuple[Middleware, ...]:
    """What a bus runs unless told otherwise: tracing, then metrics (process-wide registry)."""
    return (TracingMiddleware(), MetricsMiddleware())


@dataclass
class Bus(ABC):
    """Publish events keyed by run id; subscribe handlers by consumer group."""

    prefix: str = ""
    """Namespace of every topic and group name: runs isolated systems on one cluster."""
    specs: Sequence[TopicSpec] = field(default=ALL_TOPICS)
    middleware: Sequence[Middleware] = field(default_factory=default_middleware)
    """Hooks around every record and publication (metrics and tracing unless given)."""
    signing_key: SigningKey | None = None
    """The key the goals and commands it publishes are signed with (a handler's outputs
    too); None sends them unsigned, which only a memory without a keyring takes."""

    def topic(self, logical: str) -> str:
        """The physical name of a logical topic."""
        return f"{self.prefix}{logical}"

    def spec(self, logical: str) -> TopicSpec:
        """The declaration of a logical topic (12 partitions, 1 MiB if undeclared)."""
        for spec in self.specs:
            if spec.name == logical:
                return spec
        return TopicSpec(logical, "undeclared")

    @abstractmethod
    async def start(self) -> None:
        """Connect the producer."""

    @abstractmethod
    def readiness(self) -> str | None:
        """None once the producer and every started subscription consume; else why not.

        A started bus registers itself with the runtime's health checks (`/readyz`).
        """

    def _started(self) -> None:
        register_probe(self)

    def _stopped(self) -> None:
        unregister_probe(self)

    def _published(self, items: Sequence[Encoded]) -> None:
        for middleware in self.middleware:
            middleware.after_publish(items)

    @abstractmethod
    async def stop(self) -> None:
        """Stop every subscription (committing what was done), then the producer."""

    @abstractmethod
    async def ensure_topics(self, specs: Sequence[TopicSpec] | None = None) -> None:
        """Create the declared topics that do not exist yet."""

    async def publish(self, topic: str, event: Envelope[Any]) -> None:
        """Publish one event to a logical topic, keyed by its run id; wait for the ack."""
        await self.publish_many([Outbound(topic, event)])

    @abstractmethod
    async def publish_many(self, outbound: Sequence[Outbound]) -> None:
        """Publish events and wait until the broker acknowledged all of them."""

    @abstractmethod
    async def publish_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> None:
        """Publish bytes as they are (for tools, tests and re-drives), to the key's partition
        unless `partition` is given."""

    @abstractmethod
    def subscribe(
        self,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        options: SubscriptionOptions | None = None,
    ) -> Subscription:
        """A consumer in `group` of logical `topics`; call `start()` on it to consume."""
