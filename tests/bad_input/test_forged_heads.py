"""Records forged to look like events at a glance: the envelope's first fields as Loopline
writes them, then bytes no JSON reader takes (an invalid escape, bytes that are not UTF-8).
The planner dead-letters them as undecodable; recovery's watchdog, which reads only the first
bytes of each record, must skip them too, and not stop watching the partition.

A module of its own: a reader stuck on such a record stays stuck, and would fail the cases of
any other module sharing its system."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from loopline_events import CONTEXTS, RunCompleted
from loopline_runtime import Endpoints
from loopline_testing import System, running_system
from loopline_testing.probes import (
    produce,
    sibling_run_id,
    wait_for_dead_letters,
    wait_until_passed,
)

from loopline.sdk import Loopline


def forged(run_id: bytes) -> bytes:
    """A context whose head reads like one, with `run_id` (raw bytes) as its run id."""
    head = (
        f'{{"event_id":"{uuid.uuid4()}","type":"ContextAssembled","schema_version":1,"run_id":"'
    ).encode()
    return head + run_id + b'","seq":1,"tenant":"default","payload":{}}'


FORGERIES = {
    "an invalid escape in the run id": b"bad\\q",
    "a run id that is not UTF-8": b"bad\xff\xfe",
}


@pytest.fixture(scope="module")
def system(loopline_endpoints: Endpoints) -> Iterator[System]:
    with running_system(loopline_endpoints) as running:
        yield running


@pytest.mark.timeout(120)
@pytest.mark.parametrize("run_id", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_head_is_dead_lettered_and_every_reader_goes_past_it(
    system: System, run_id: bytes
) -> None:
    key = f"bad-{uuid.uuid4().hex[:10]}"
    placed = await produce(system, CONTEXTS.name, forged(run_id), key=key)
    good = sibling_run_id(key)
    async with Loopline(system.kafka, producer="bad-input") as client:
        outcome = await (await client.submit("What is 1 + 1?", run_id=good)).result(timeout=90)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload

    (entry,) = await wait_for_dead_letters(system, placed, timeout=20)
    assert (entry["consumer_group"], entry["kind"]) == ("planner", "undecodable"), entry
    for reader in ("planner", "recovery-watchdog"):
        assert await wait_until_passed(system, reader, placed, timeout=20), f"{reader} is stuck"
    assert all(s.state == "running" for s in system.services.status())
