"""A run's event stream: its past from the log, then its events as they come, each once,
resumable from any event's id.

An event's id is a cursor: for each followed topic, the offset in the run's partition just
past what the stream has sent. Each partition is sent in its own order, so a client that
comes back with the id of the last event it saw has seen exactly the run's records below the
cursor, and misses none and sees none twice when the stream goes on from there. Duplicates in
the log (a record re-published after a crash, a re-drive) carry the same event id and are
sent once: a resumed stream reads the run from its start to know which ids were sent.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopline_events import Envelope, RunCancelled, RunCompleted, RunFailed

from loopline.gateway._feed import FOLLOWED_TOPICS, Follower, Item, RunFeed

ENDINGS = (RunCompleted, RunFailed, RunCancelled)
CURSOR = re.compile(rf"^\d{{1,19}}(\.\d{{1,19}}){{{len(FOLLOWED_TOPICS) - 1}}}$")


class BadCursorError(ValueError):
    """A Last-Event-ID the gateway did not write."""


def parse_cursor(text: str) -> tuple[int, ...]:
    """The offsets of an event id (`o1.o2.o3.o4`, one per followed topic)."""
    if not CURSOR.match(text.strip()):
        raise BadCursorError(
            f"Last-Event-ID {text[:80]!r} is not an event id of this stream: give the id of "
            "the last event received, or none to start from the run's beginning"
        )
    return tuple(int(part) for part in text.strip().split("."))


def format_cursor(offsets: tuple[int, ...] | list[int]) -> str:
    return ".".join(str(o) for o in offsets)


@dataclass(frozen=True, slots=True)
class Sent:
    """An event to send, and its id (the cursor just past it)."""

    id: str
    event: Envelope[Any]
    topic: str


class RunStream:
    """One client's stream of a run. `ended` before iterating: the client already saw the
    run's end (a resumed stream of a finished run), and there is nothing more to send."""

    def __init__(
        self,
        feed: RunFeed,
        follower: Follower,
        backlog: list[Item],
        cursor: list[int],
        *,
        keepalive_s: float,
    ):
        self.feed, self.follower, self.keepalive_s = feed, follower, keepalive_s
        self.cursor = cursor
        self.seen: set[Any] = set()
        self.ended = False
        self._backlog: list[Item] = []
        for item in backlog:  # what the client saw before: remember it, send the rest
            if item.offset < cursor[item.topic]:
                self.seen.add(item.event.event_id)
                self.ended = self.ended or isinstance(item.event.payload, ENDINGS)
            else:
                self._backlog.append(item)

    def close(self) -> None:
        self.feed.unfollow(self.follower)

    async def events(self) -> AsyncIterator[Sent | None]:
        """The events to send, ending with the run's end; None when idle for `keepalive_s`
        (time for a keep-alive). Raises FollowerOverflowError for a client too slow."""
        try:
            if self.ended:
                return
            for item in self._backlog:
                sent = self._take(item)
                if sent is not None:
                    yield sent
                    if isinstance(sent.event.payload, ENDINGS):
                        return
            while True:
                live = await self.follower.next(self.keepalive_s)
                if live is None:
                    yield None
                    continue
                sent = self._take(live)
                if sent is not None:
                    yield sent
                    if isinstance(sent.event.payload, ENDINGS):
                        return
        finally:
            self.close()

    def _take(self, item: Item) -> Sent | None:
        """The item as an event to send; None if the client has it already."""
        if item.offset < self.cursor[item.topic]:
            return None
        self.cursor[item.topic] = item.offset + 1
        event_id = item.event.event_id
        if event_id in self.seen:
            return None
        self.seen.add(event_id)
        return Sent(format_cursor(self.cursor), item.event, FOLLOWED_TOPICS[item.topic])


async def open_stream(
    feed: RunFeed,
    run_id: str,
    *,
    first_seen: datetime | None,
    resume: tuple[int, ...] | None,
    clock_skew_s: float,
    keepalive_s: float,
) -> RunStream:
    """A stream of `run_id`'s events, from its beginning or from `resume`.

    `first_seen` is the earliest time recorded of the run (memory's timeline, or when the
    gateway submitted it); none of its records in the followed topics is older, give or take
    the hosts' clock skew. None: nothing is recorded yet, and the run's records are all yet
    to be written.
    """
    follower = feed.follow(run_id)
    try:
        end = follower.positions
        since = first_seen.timestamp() if first_seen is not None else time.time()
        found = await feed.offsets_at(run_id, int((since - clock_skew_s) * 1000))
        start = [e if f is None else min(f, e) for f, e in zip(found, end, strict=True)]
        if resume is not None:
            start = [min(s, r) for s, r in zip(start, resume, strict=True)]
        cursor = list(resume) if resume is not None else list(start)
        backlog = await feed.history(run_id, start, end)
    except BaseException:
        feed.unfollow(follower)
        raise
    return RunStream(feed, follower, backlog, cursor, keepalive_s=keepalive_s)
