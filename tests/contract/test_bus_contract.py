"""The bus contract: both implementations publish, deliver in per-run order, dead-letter bad
input with its reason and keep going, and commit only what was handled."""

from __future__ import annotations

import asyncio
import base64
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from loopline_bus import Bus, InMemoryBus, Outbound, SubscriptionOptions, partition_for
from loopline_events import (
    DeadLettered,
    Envelope,
    GoalSubmitted,
    RunCompleted,
    TransientError,
    decode_event,
    encode_event,
)

TIMEOUT = 30.0


def goal(run_id: str, text: str = "add 2 and 3", seq: int = 0) -> Envelope[GoalSubmitted]:
    return Envelope.of(GoalSubmitted(goal=text), run_id=run_id, producer="test", seq=seq)


class Collector:
    """A handler that records what it is given."""

    def __init__(self) -> None:
        self.events: list[Envelope[Any]] = []
        self._arrived = asyncio.Event()

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        self.events.append(event)
        self._arrived.set()
        return ()

    async def wait_for(self, predicate: Callable[[list[Envelope[Any]]], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not predicate(self.events):
                self._arrived.clear()
                await self._arrived.wait()


async def consume(bus: Bus, group: str, topics: Sequence[str], handler: Any) -> Any:
    sub = bus.subscribe(group, topics, handler)
    await sub.start()
    await sub.wait_assigned()
    return sub


async def test_round_trip(bus: Bus) -> None:
    got = Collector()
    await consume(bus, "roundtrip", ["agent.goals"], got)
    sent = goal("run-1")
    await bus.publish("agent.goals", sent)
    await got.wait_for(lambda evs: len(evs) == 1)
    assert got.events[0] == sent
    assert isinstance(got.events[0].payload, GoalSubmitted)


async def test_thousand_events_of_fifty_runs_arrive_in_per_run_order(bus: Bus) -> None:
    got = Collector()
    await consume(bus, "order", ["agent.goals"], got)
    events = [goal(f"run-{i % 50}", seq=i // 50) for i in range(1000)]
    await bus.publish_many([Outbound("agent.goals", e) for e in events])
    await got.wait_for(lambda evs: len(evs) >= 1000)
    per_run: dict[str, list[int]] = defaultdict(list)
    for e in got.events:
        per_run[e.run_id].append(e.seq)
    assert len(got.events) == 1000
    assert len(per_run) == 50
    assert all(seqs == list(range(20)) for seqs in per_run.values())


@pytest.mark.parametrize(
    ("bad", "kind", "reason"),
    [
        (b"\xff\xfe not json {", "undecodable", "not JSON"),
        (b'{"type": "GoalSubmitted", "run_id": "r", "payload": {"goal": 42}}', "schema", "goal"),
        (
            b'{"type": "GoalSubmitted", "schema_version": 7, "run_id": "r", "payload": {}}',
            "unknown_version",
            "newer",
        ),
        (b'{"type": "NoSuchEvent", "run_id": "r"}', "unknown_type", "NoSuchEvent"),
    ],
)
async def test_bad_message_is_dead_lettered_and_the_next_good_one_is_handled(
    bus: Bus, bad: bytes, kind: str, reason: str
) -> None:
    got, dead = Collector(), Collector()
    await consume(bus, "worker", ["agent.goals"], got)
    await consume(bus, "dlq-reader", ["agent.goals.dlq"], dead)
    headers = [("origin", b"contract-test")]
    await bus.publish_raw("agent.goals", bad, key=b"bad-run", headers=headers)
    good = goal("good-run")
    await bus.publish("agent.goals", good)

    await got.wait_for(lambda evs: len(evs) == 1)
    await dead.wait_for(lambda evs: len(evs) == 1)
    assert got.events[0] == good
    letter = dead.events[0].payload
    assert isinstance(letter, DeadLettered)
    assert letter.kind == kind
    assert reason in letter.error
    assert letter.source_topic == "agent.goals"
    assert letter.consumer_group == "worker"
    assert letter.original_value == bad
    assert letter.original_key == b"bad-run"
    assert ("origin", b"contract-test") in letter.original_headers
    assert dead.events[0].run_id == "bad-run"


async def test_dead_letter_survives_the_wire_byte_for_byte(bus: Bus) -> None:
    dead = Collector()
    await consume(bus, "dlq-reader", ["agent.goals.dlq"], dead)
    await consume(bus, "worker", ["agent.goals"], Collector())
    raw = bytes(range(256))
    await bus.publish_raw("agent.goals", raw, key=b"k")
    await dead.wait_for(lambda evs: len(evs) == 1)
    wire = encode_event(dead.events[0])
    assert base64.b64encode(raw).decode() in wire.decode()
    again = decode_event(wire).payload
    assert isinstance(again, DeadLettered)
    assert again.original_value == raw


async def test_handler_outputs_are_published(bus: Bus) -> None:
    async def answer(event: Envelope[Any]) -> Sequence[Outbound]:
        done = RunCompleted(answer="5", steps=1)
        return [Outbound("agent.results", event.follow(done, producer="test", seq=1))]

    results = Collector()
    await consume(bus, "answerer", ["agent.goals"], answer)
    await consume(bus, "reader", ["agent.results"], results)
    sent = goal("run-out")
    await bus.publish("agent.goals", sent)
    await results.wait_for(lambda evs: len(evs) == 1)
    out = results.events[0]
    assert isinstance(out.payload, RunCompleted)
    assert out.causation_id == sent.event_id
    assert (out.run_id, out.seq) == ("run-out", 1)


class FlakyError(TransientError):
    pass


async def test_retryable_errors_are_retried_and_fatal_ones_dead_lettered(bus: Bus) -> None:
    calls: dict[str, int] = defaultdict(int)

    async def handler(event: Envelope[Any]) -> Sequence[Outbound]:
        calls[event.run_id] += 1
        if event.run_id == "flaky" and calls["flaky"] < 2:
            raise FlakyError("try again")
        if event.run_id == "broken":
            raise ValueError("cannot handle this")
        return ()

    dead = Collector()
    sub = bus.subscribe("worker", ["agent.goals"], handler, SubscriptionOptions(max_attempts=3))
    await sub.start()
    await consume(bus, "dlq-reader", ["agent.goals.dlq"], dead)
    await bus.publish("agent.goals", goal("flaky"))
    await bus.publish("agent.goals", goal("broken"))
    await dead.wait_for(lambda evs: len(evs) == 1)
    letter = dead.events[0].payload
    assert isinstance(letter, DeadLettered)
    assert (letter.kind, dead.events[0].run_id) == ("handler", "broken")
    assert "ValueError: cannot handle this" in letter.error
    assert calls == {"flaky": 2, "broken": 1}


async def test_offsets_are_committed_after_handling_and_kept_across_restarts(bus: Bus) -> None:
    first = Collector()
    sub = await consume(bus, "durable", ["agent.goals"], first)
    await bus.publish_many([Outbound("agent.goals", goal(f"r{i}")) for i in range(5)])
    await first.wait_for(lambda evs: len(evs) == 5)
    await sub.stop()

    await bus.publish("agent.goals", goal("after-restart"))
    second = Collector()
    await consume(bus, "durable", ["agent.goals"], second)
    await second.wait_for(lambda evs: len(evs) >= 1)
    await asyncio.sleep(0.5)  # a redelivery of the first five would arrive by now
    assert [e.run_id for e in second.events] == ["after-restart"]


async def test_an_unreadable_dead_letter_stays_in_its_topic_and_the_next_is_handled(
    bus: Bus,
) -> None:
    dead = Collector()
    await consume(bus, "dlq-reader", ["agent.goals.dlq"], dead)
    await bus.publish_raw("agent.goals.dlq", b"garbage", key=b"k")
    await consume(bus, "worker", ["agent.goals"], Collector())
    await bus.publish_raw("agent.goals", b"also garbage", key=b"k2")
    await dead.wait_for(lambda evs: len(evs) == 1)
    assert dead.events[0].run_id == "k2"
    if isinstance(bus, InMemoryBus):
        assert "agent.goals.dlq.dlq" not in bus._log


async def test_a_run_s_record_outside_its_partition_is_routed_to_it_and_handled_there_once(
    bus: Bus,
) -> None:
    """As a goal from kcat or another librdkafka client (CRC32 partitioner) would land."""
    routed = Collector()
    sub = bus.subscribe("router", ["agent.goals"], routed, SubscriptionOptions(admit_foreign=True))
    await sub.start()
    await sub.wait_assigned()
    everything = Collector()
    await consume(bus, "onlooker", ["agent.goals"], everything)
    lost = goal("run-lost")
    home = partition_for(b"run-lost", bus.spec("agent.goals").partitions)
    elsewhere = (home + 1) % bus.spec("agent.goals").partitions
    await bus.publish_raw("agent.goals", encode_event(lost), key=b"run-lost", partition=elsewhere)
    await bus.publish("agent.goals", goal("run-home"))  # where it belongs: handled as it is
    await everything.wait_for(lambda evs: len(evs) == 3)  # the record, its copy, the other
    await routed.wait_for(lambda evs: len(evs) == 2)
    await asyncio.sleep(0.5)  # nothing more comes
    assert sorted(e.run_id for e in routed.events) == ["run-home", "run-lost"]
    assert [e.event_id for e in everything.events if e.run_id == "run-lost"] == [lost.event_id] * 2


async def test_a_hand_written_record_without_id_or_time_is_admitted_with_fixed_ones(
    bus: Bus,
) -> None:
    """As `kcat` users write goals: `{"type": ..., "run_id": ..., "payload": {...}}`."""
    admitted = Collector()
    sub = bus.subscribe("admit", ["agent.goals"], admitted, SubscriptionOptions(admit_foreign=True))
    await sub.start()
    await sub.wait_assigned()
    everything = Collector()
    await consume(bus, "onlooker-2", ["agent.goals"], everything)
    raw = b'{"type": "GoalSubmitted", "run_id": "run-raw", "payload": {"goal": "2 + 2?"}}'
    await bus.publish_raw("agent.goals", raw, key=b"run-raw")
    await admitted.wait_for(lambda evs: len(evs) == 1)
    await everything.wait_for(lambda evs: len(evs) == 2)
    (handled,) = admitted.events
    assert handled.is_complete
    original, copy = everything.events
    assert not original.is_complete
    assert (copy.event_id, copy.occurred_at) == (handled.event_id, handled.occurred_at)
    assert isinstance(copy.payload, GoalSubmitted)
    assert copy.payload.goal == "2 + 2?"
