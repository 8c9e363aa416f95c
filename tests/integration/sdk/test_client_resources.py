"""The SDK's client on the real Kafka: a run it follows is followed until its end is seen or
the client is left, and then its connections are closed, whether or not anyone awaited the
run's result (a wait given up, code that raised between submit and result)."""

from __future__ import annotations

import gc
import warnings

import pytest
from loopline_runtime import KafkaSettings

from loopline.sdk import Loopline


def unclosed_sockets() -> list[str]:
    """What the collector finds of sockets left open, now."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    return [str(w.message) for w in caught if "unclosed" in str(w.message)]


async def test_runs_not_awaited_are_closed_with_their_client(kafka_settings: KafkaSettings) -> None:
    unclosed_sockets()  # what earlier tests left is not this test's
    async with Loopline(kafka_settings, producer="test") as client:
        runs = [await client.submit(f"What is {n} + 1?") for n in range(5)]
        with pytest.raises(TimeoutError):
            await runs[0].result(timeout=0.5)  # no services: a wait given up closes its run
        assert client._runs == set(runs[1:])
    assert client._runs == set()
    del runs
    assert unclosed_sockets() == []


async def test_a_run_closed_by_its_own_block_leaves_its_client(
    kafka_settings: KafkaSettings,
) -> None:
    async with Loopline(kafka_settings, producer="test") as client:
        async with await client.submit("What is 2 + 2?") as run:
            assert run in client._runs
        assert client._runs == set()
