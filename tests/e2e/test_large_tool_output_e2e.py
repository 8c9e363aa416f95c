"""A large tool output is stored once by memory and referenced from the contexts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import asyncpg
import pytest
from loopline_events import ContextAssembled, RunCompleted, ToolCallSucceeded
from loopline_memory.domain.window import ARTIFACT_THRESHOLD, artifact_ref
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


async def test_a_large_output_is_stored_once_and_contexts_carry_a_reference(
    system: System, big_page: str
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit(f"Fetch {big_page}")
        steps = [e async for e in run.steps()]
    assert isinstance(steps[-1].payload, RunCompleted)
    (fetched,) = [e.payload for e in steps if isinstance(e.payload, ToolCallSucceeded)]
    assert len(fetched.output) > ARTIFACT_THRESHOLD
    ref = artifact_ref(fetched.output)
    contexts = [e.payload for e in steps if isinstance(e.payload, ContextAssembled)]
    shown = contexts[-1].messages[-1].content
    assert ref in shown
    assert len(shown) < 5_000  # the context carries the start and the reference, not the whole

    conn = await asyncpg.connect(system.env["LOOPLINE_POSTGRES_DSN"])
    try:
        schema = schema_name("memory", system.kafka.topic_prefix)
        stored = await conn.fetchval(
            f'SELECT content FROM "{schema}".artifacts WHERE ref = $1', ref
        )
        state = await conn.fetchval(
            f'SELECT length(state::text) FROM "{schema}".runs WHERE run_id = $1', run.run_id
        )
    finally:
        await conn.close()
    assert stored == fetched.output
    assert state < 20_000  # the run's state keeps the reference too
