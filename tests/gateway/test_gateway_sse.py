"""A run's events over Server-Sent Events: resumed after a cut with Last-Event-ID, nothing is
missed and nothing is seen twice; 200 clients following 200 runs each see their run's end."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from loopline_testing import System
from loopline_testing.gateway import Keys, ServerEvent, client, follow

pytestmark = pytest.mark.e2e


def _ids(events: list[ServerEvent]) -> list[str]:
    return [e.json()["event_id"] for e in events]


def _by_topic(events: list[ServerEvent]) -> dict[str, list[str]]:
    topics: dict[str, list[str]] = {}
    for e in events:
        topics.setdefault(e.json()["topic"], []).append(e.json()["event_id"])
    return topics


async def test_a_client_that_reconnects_misses_nothing_and_sees_nothing_twice(
    gateway_system: System, keys: Keys
) -> None:
    async with client(gateway_system.gateway_url, keys.alice) as http:
        accepted = await http.post("/v1/runs", json={"goal": "count to 6"})
        run_id = accepted.json()["run_id"]
        first = await follow(http, run_id, limit=2)
        assert first[-1].id is not None
        await asyncio.sleep(1.0)  # the run goes on while the client is away
        second = await follow(http, run_id, last_event_id=first[-1].id, limit=3)
        rest = await follow(http, run_id, last_event_id=second[-1].id)
        resumed = first + second + rest
        assert resumed[-1].json()["type"] == "RunCompleted"
        # The whole stream, read again from the start once the run has ended.
        whole = await follow(http, run_id)
        assert len(_ids(resumed)) == len(set(_ids(resumed)))
        assert set(_ids(resumed)) == set(_ids(whole))
        assert _by_topic(resumed) == _by_topic(whole)
        assert len(whole) >= 10  # six steps' contexts, decisions, tool results and the end
        # After the end, a reconnecting client is told there is nothing more (204).
        after = await http.get(
            f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": resumed[-1].id or ""}
        )
        assert after.status_code == 204


async def test_200_clients_following_200_runs_each_see_its_end(
    gateway_system: System, keys: Keys
) -> None:
    runs = 200
    limits = {"max_connections": runs + 20, "max_keepalive_connections": runs + 20}
    async with client(gateway_system.gateway_url, keys.bob, limits=httpx.Limits(**limits)) as http:
        started = time.monotonic()
        submitted = await asyncio.gather(
            *(http.post("/v1/runs", json={"goal": f"What is {n} + 1?"}) for n in range(runs))
        )
        run_ids = [s.json()["run_id"] for s in submitted]
        followed = await asyncio.gather(*(follow(http, run_id) for run_id in run_ids))
        took = time.monotonic() - started
    ends = [events[-1].json() for events in followed]
    assert [e["type"] for e in ends] == ["RunCompleted"] * runs
    assert [e["run_id"] for e in ends] == run_ids
    for n, end in enumerate(ends):
        assert str(n + 1) in end["payload"]["answer"]
    print(f"\n200 runs submitted and followed to their end over SSE in {took:.1f} s")
