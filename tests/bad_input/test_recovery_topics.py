"""Bad input on the topics recovery reads: its retry tiers and every dead-letter topic. A bad
message there has no dead-letter topic of its own to go to: recovery logs it with its kind and
reason and moves on, and the good message right behind it (same partition) is still handled:
a retry re-published, a dead letter recorded."""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from loopline_events import (
    GOALS,
    LOOP_TOPICS,
    RETRY_TOPICS,
    DeadLettered,
    DeadLetterKind,
    Envelope,
    GoalSubmitted,
    RunCompleted,
    SigningKey,
    encode_event,
    utcnow,
)
from loopline_runtime import Endpoints
from loopline_testing import System, running_system
from loopline_testing.probes import (
    Placed,
    envelope,
    produce,
    sibling_run_id,
    wait_for_dead_letters,
    wait_for_log_line,
    wait_until_passed,
)

from loopline.sdk import Loopline


@dataclass(frozen=True)
class Bad:
    """A kind of bad message on a topic of dead letters, and the kind recovery must name."""

    name: str
    kind: str

    @property
    def big(self) -> bool:
        """Too big for the topic: sent compressed, as only so does it get past the broker."""
        return self.name == "oversized"

    def value(self, run_id: str, limit: int) -> bytes:
        letter = _letter(GOALS.name, run_id, b"{}")
        if self.name == "undecodable":
            return b"\x00\x01 not JSON at all"
        if self.name == "wrong schema":
            return envelope("DeadLettered", run_id, {"source_topic": 42})
        if self.name == "unknown version":
            return envelope("DeadLettered", run_id, letter, schema_version=99)
        return envelope("DeadLettered", run_id, letter, padding="x" * (2 * limit))


BAD = (
    Bad("undecodable", "undecodable"),
    Bad("wrong schema", "schema"),
    Bad("unknown version", "unknown_version"),
    Bad("oversized", "oversized"),
)


def _letter(source: str, run_id: str, value: bytes, offset: int = 0) -> dict[str, object]:
    """The payload of a dead letter of `value` from `source`, as the bus writes one."""
    letter = DeadLettered(
        source_topic=source,
        partition=0,
        offset=offset,
        consumer_group="memory",
        kind=DeadLetterKind.HANDLER,
        error="RuntimeError: written by the bad-input suite",
        original_key=base64.b64encode(run_id.encode()),
        original_value=base64.b64encode(value),
    )
    return json.loads(letter.model_dump_json())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints) -> Iterator[System]:
    with running_system(loopline_endpoints) as running:
        yield running


async def _logged(system: System, placed: Placed, kind: str) -> str | None:
    """Recovery's line about the message at `placed` (its kind and reason)."""
    log = system.services.dir / "recovery.log"
    where = f"{placed.topic}[{placed.partition}]@{placed.offset} ({kind})"
    return await wait_for_log_line(log, where)


@pytest.mark.timeout(180)
async def test_bad_retries_are_logged_and_the_retry_behind_them_is_re_published(
    system: System,
) -> None:
    # Every tier at once: each has its own consumer, so they are judged side by side.
    tiers = {t.name: f"bad-{uuid.uuid4().hex[:10]}" for t in RETRY_TOPICS}
    placed = {
        tier: [
            (bad, await produce(system, tier, bad.value(key, limit), key=key, compressed=bad.big))
            for bad in BAD
        ]
        for tier, key, limit in ((t.name, tiers[t.name], t.max_message_bytes) for t in RETRY_TOPICS)
    }
    goods = {tier: sibling_run_id(key) for tier, key in tiers.items()}
    async with Loopline(system.kafka, producer="bad-input") as client:
        for tier, good in goods.items():
            retry = _due_retry_of_goal(good, "What is 2 + 2?", system.signing_key())
            await client._bus.publish(tier, retry)
    async with system.results() as results:
        outcomes = await results.wait_for(set(goods.values()), timeout=90)
    for good in goods.values():
        payload = outcomes[good].payload
        assert isinstance(payload, RunCompleted), payload
        assert "2 + 2 = 4" in payload.answer
    for tier, written in placed.items():
        for bad, where in written:
            assert await _logged(system, where, bad.kind), f"nothing said of {bad.name} on {tier}"
        group = f"recovery-retry-{tier.rsplit('.', 1)[-1]}"
        assert await wait_until_passed(system, group, written[-1][1], timeout=20), group
    assert all(s.state == "running" for s in system.services.status())


def _due_retry_of_goal(run_id: str, goal: str, signer: SigningKey | None) -> Envelope[DeadLettered]:
    """A retry, due now, of a goal (signed as its sender signed it) recovery had
    dead-lettered."""
    submitted = Envelope.of(GoalSubmitted(goal=goal), run_id=run_id, producer="test")
    if signer is not None:
        submitted = signer.sign(submitted)
    letter = _letter(GOALS.name, run_id, encode_event(submitted))
    waiting = DeadLettered.model_validate({**letter, "not_before": utcnow().isoformat()})
    return Envelope.of(waiting, run_id=run_id, producer="test")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.name)
@pytest.mark.parametrize("source", [t.name for t in LOOP_TOPICS])
async def test_a_bad_dead_letter_is_logged_and_the_one_behind_it_is_recorded(
    system: System, source: str, bad: Bad
) -> None:
    dlq = f"{source}.dlq"
    key = f"bad-{uuid.uuid4().hex[:10]}"
    good = sibling_run_id(key)
    limit = 2 * next(t.max_message_bytes for t in LOOP_TOPICS if t.name == source)
    placed = await produce(system, dlq, bad.value(key, limit), key=key, compressed=bad.big)
    offset = random.randrange(10**6, 10**9)  # a source offset no other case uses
    letter = DeadLettered.model_validate(_letter(source, good, b"{}", offset))
    async with Loopline(system.kafka, producer="bad-input") as client:
        await client._bus.publish(dlq, Envelope.of(letter, run_id=good, producer="test"))
    recorded = await wait_for_dead_letters(system, Placed(source, 0, offset))
    assert [(e["run_id"], e["consumer_group"], e["kind"]) for e in recorded] == [
        (good, "memory", "handler")
    ]
    line = await _logged(system, placed, bad.kind)
    assert line is not None, f"recovery said nothing of {placed}"
    assert await wait_until_passed(system, "recovery", placed, timeout=20), "recovery is stuck"
    assert all(s.state == "running" for s in system.services.status())
