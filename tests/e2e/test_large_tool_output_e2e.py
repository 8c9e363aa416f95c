"""A large tool output is stored once by the executor (a claim check): the events carry its
reference, and the run's state and contexts stay small."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import pytest
from loopline_artifacts import INLINE_CHARS, reference
from loopline_bus import read_history
from loopline_events import CONTEXTS, RunCompleted, ToolCallSucceeded, encode_event
from loopline_runtime import schema_name
from loopline_testing import System

from loopline.sdk import Loopline

BODY = ("0123456789abcdef" * 64 + "\n") * 2000  # about 2 MB; http_get reads the first 100 kB


class _Big(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = BODY.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def big_page() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Big)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/big"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_large_output_is_stored_once_and_events_carry_its_reference(
    system: System, big_page: str
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit(f"Fetch {big_page}")
        steps = [e async for e in run.steps()]
    assert isinstance(steps[-1].payload, RunCompleted)
    (fetched,) = [e.payload for e in steps if isinstance(e.payload, ToolCallSucceeded)]
    assert fetched.output == ""
    stored = fetched.artifact
    assert stored is not None
    assert stored.chars > INLINE_CHARS

    contexts = await read_history(system.kafka, [CONTEXTS.name], run.run_id)
    assert max(len(encode_event(r.event)) for r in contexts) < 8_000
    last = contexts[-1].event.payload
    assert [m.artifact for m in last.appended if m.role == "tool"] == [stored]

    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        artifacts = schema_name("artifacts", system.kafka.topic_prefix)
        text = await conn.fetchval(
            f'SELECT content FROM "{artifacts}".artifacts WHERE ref = $1', stored.ref
        )
        memory = schema_name("memory", system.kafka.topic_prefix)
        state = await conn.fetchval(
            f'SELECT length(state::text) FROM "{memory}".runs WHERE run_id = $1', run.run_id
        )
    finally:
        await conn.close()
    assert reference(text) == stored  # whole, under its digest
    assert "0123456789abcdef" in text[:100]
    assert state < 20_000  # the run's state keeps the reference too
