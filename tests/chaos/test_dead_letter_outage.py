"""A dead letter that reaches recovery while PostgreSQL is down must still be recorded once the
database is back: the ledger is where an operator finds it (`loopline dlq ls`) and redrives it,
and where recovery decides to retry it or fail its run. Private servers: PostgreSQL is stopped.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
from pathlib import Path

import pytest
from loopline_events import CONTROL, DeadLettered, DeadLetterKind, Envelope
from loopline_testing import launch_system, stop_system, unique_prefix
from loopline_testing.chaos import PrivateInfra
from loopline_testing.probes import Placed, wait_for_dead_letters

from loopline.sdk import Loopline


@pytest.mark.timeout(240)
async def test_a_dead_letter_arriving_while_postgres_is_down_is_recorded_after() -> None:
    async with PrivateInfra(say=print) as infra:
        home = Path(tempfile.mkdtemp(prefix="system-", dir=infra.home))
        with infra.granted(unique_prefix()) as namespace:
            system = await asyncio.to_thread(
                launch_system, infra.endpoints, namespace, home, store=infra.store
            )
            try:
                letter = DeadLettered(
                    source_topic=CONTROL.name,
                    partition=0,
                    offset=4242,
                    consumer_group="memory",
                    kind=DeadLetterKind.HANDLER,
                    error="RuntimeError: a command memory could not handle",
                    original_key=base64.b64encode(b"run-1"),
                    original_value=base64.b64encode(b"{}"),
                )
                await infra.stop("postgres")
                async with Loopline(system.kafka, producer="chaos") as client:
                    await client._bus.publish(
                        CONTROL.dlq.name, Envelope.of(letter, run_id="run-1", producer="chaos")
                    )
                await asyncio.sleep(5)  # recovery meets it while the database is down
                await infra.start("postgres")
                recorded = await wait_for_dead_letters(
                    system, Placed(CONTROL.name, 0, 4242), timeout=30
                )
                assert [(e["run_id"], e["kind"]) for e in recorded] == [("run-1", "handler")]
            finally:
                await asyncio.to_thread(stop_system, system)
