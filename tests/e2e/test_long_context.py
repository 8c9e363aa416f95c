"""Contexts by reference, with the real services and a model over real HTTP: a run reads 40
pages of 60 kB into a million-token window while every context stays small; the request the
model receives is the run's history seen through memory's window, whoever built it; a 5 MB
output is read to its end with read_artifact; a summarising profile replays without a model."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from loopline_artifacts import open_artifacts
from loopline_bus import read_history
from loopline_events import (
    CONTEXTS,
    ContextAssembled,
    Message,
    RunCompleted,
    encode_event,
    request_messages,
)
from loopline_testing import System
from loopline_testing.openai_server import (
    OpenAIServer,
    RecordedRequest,
    text_completion,
    tool_call_completion,
)
from loopline_testing.texts import long_text_of

from loopline.sdk import Loopline

PAGES = 40
PAGE_CHARS = 60_000
FIVE_MB = 5_000_000
CHUNK = 200_000


def page(n: int) -> str:
    return long_text_of(PAGE_CHARS, seed=f"page{n}")


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        n = int(self.path.rsplit("/", 1)[-1])
        data = page(n).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/page"
    finally:
        server.shutdown()
        server.server_close()


def reads_every_page(base: str) -> Callable[[RecordedRequest], dict[str, Any]]:
    """A model that fetches the next page it has not read, then says it is done."""

    def decide(request: RecordedRequest) -> dict[str, Any]:
        read = sum(1 for m in request["messages"] if m["role"] == "tool")
        if read < PAGES:
            return tool_call_completion([("http_get", {"url": f"{base}/{read}"}, f"call_{read}")])
        return text_completion(f"I read {read} pages.")

    return decide


def wire(message: Message) -> dict[str, Any]:
    """A message as the OpenAI adapter sends it (what the test server records)."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        return {
            "role": "assistant",
            "tool_calls": [(c.call_id, c.tool, c.arguments) for c in message.tool_calls],
        }
    return {"role": message.role, "content": message.content}


def received(request: RecordedRequest) -> list[dict[str, Any]]:
    out = []
    for m in request["messages"]:
        if m.get("tool_calls"):
            calls = [
                (
                    c["id"],
                    c["function"]["name"],
                    json.loads(c["function"]["arguments"]),
                )
                for c in m["tool_calls"]
            ]
            out.append({"role": "assistant", "tool_calls": calls})
        elif m["role"] == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


@pytest.mark.timeout(600)
async def test_forty_pages_fill_a_million_token_window_while_every_context_stays_small(
    start_system: Callable[..., System], pages: str
) -> None:
    with OpenAIServer(default=reads_every_page(pages)) as server:
        system = start_system(env_extra={"OPENAI_BASE_URL": server.base_url})
        async with Loopline(system.kafka, producer="e2e") as client:
            run = await client.submit("Read every page.", agent="reader")
            # Halfway, the planner dies and forgets (Redis too): it must rebuild the run's
            # history from the log, never build a request from a partial view.
            async for event in run.steps():
                if isinstance(event.payload, ContextAssembled) and event.seq == PAGES // 2:
                    await asyncio.to_thread(system.kill, "planner")
                    await _forget_planner_histories(system)
                    await system.restart("planner")
            outcome = await run.result(timeout=300)
            assert isinstance(outcome.payload, RunCompleted), getattr(
                outcome.payload, "message", ""
            )
            assert outcome.payload.answer == f"I read {PAGES} pages."

            # The model's last request holds all 40 pages, whole.
            last = server.requests[-1]
            tool_texts = [m["content"] for m in last["messages"] if m["role"] == "tool"]
            assert len(tool_texts) == PAGES
            assert all(page(n) in text for n, text in enumerate(tool_texts))

            # Every context of the run stays small: what is new, not the history.
            contexts = await read_history(system.kafka, [CONTEXTS.name], run.run_id)
            sizes = [len(encode_event(r.event)) for r in contexts]
            assert len(sizes) >= PAGES + 1
            assert max(sizes) <= 64 * 1024, max(sizes)

            # Each request the model received is the history through the context's window,
            # exactly; the replayed state is memory's, byte for byte.
            replayed = await client.replay(run.run_id)
            assert replayed.state is not None
            hot, durable = await system.memory_states(run.run_id)
            assert replayed.state == hot == durable
            history = replayed.state.messages
            texts = await _artifacts(system, [m.artifact.ref for m in history if m.artifact])
            expected = [
                [wire(m) for m in request_messages(history[: c.length], c.window, texts)]
                for c in _distinct(contexts)
            ]
            # One after another, each context asked about (the killed planner may have asked
            # about its last one already: then again).
            at = 0
            for request in server.requests:
                if received(request) != expected[at]:
                    at += 1
                    assert received(request) == expected[at]
            assert at == len(expected) - 1
            # Re-run calls no model; a fork from step 20 goes on to the end.
            calls = server.calls
            report = await client.rerun(run.run_id)
            assert not report.diverged, report.divergences[:1]
            assert server.calls == calls
            fork = await client.fork(run.run_id, from_step=PAGES // 2)
            forked = await fork.result(timeout=300)
            assert isinstance(forked.payload, RunCompleted)
            assert forked.payload.answer == f"I read {PAGES} pages."


def _distinct(contexts: list[Any]) -> list[ContextAssembled]:
    """The run's contexts, each once (a redelivered one is re-published with its id)."""
    seen: dict[Any, ContextAssembled] = {}
    for r in contexts:
        seen.setdefault(r.event.event_id, r.event.payload)
    return list(seen.values())


async def _artifacts(system: System, refs: list[str]) -> dict[str, str]:
    pool = await asyncpg.create_pool(system.env["LOOPLINE_POSTGRES_DSN"], min_size=1, max_size=1)
    try:
        return await (await open_artifacts(pool, system.prefix)).read_many(refs)
    finally:
        await pool.close()


async def _forget_planner_histories(system: System) -> None:
    redis = aioredis.from_url(system.env["LOOPLINE_REDIS_URL"])
    try:
        keys = [k async for k in redis.scan_iter(match=f"{system.prefix}planner:history:*")]
        assert keys, "the planner keeps the runs' histories in Redis"
        await redis.delete(*keys)
    finally:
        await redis.aclose()


def reads_to_the_end(request: RecordedRequest) -> dict[str, Any]:
    """A model that asks for a 5 MB text, then reads it with read_artifact to its end."""
    tools = [m for m in request["messages"] if m["role"] == "tool"]
    if not tools:
        return tool_call_completion([("long_text", {"chars": FIVE_MB, "seed": "big"}, "call_0")])
    last = tools[-1]["content"]
    shown = re.search(r"(\d+) of (\d+) characters shown; the whole output is artifact (\S+):", last)
    if shown:  # the output itself, shown in part: read on from where it stops
        ref, offset = shown.group(3), int(shown.group(1))
    else:
        trailer = re.search(r"characters \d+-(\d+) of (\d+) of artifact (\S+); (.*)\]$", last)
        assert trailer, last[-300:]
        if trailer.group(4) == "the end":
            return text_completion("I read it to its end.")
        ref, offset = trailer.group(3), int(trailer.group(1))
    call = ("read_artifact", {"ref": ref, "offset": offset, "length": CHUNK}, f"call_{len(tools)}")
    return tool_call_completion([call])


@pytest.mark.timeout(600)
async def test_a_five_megabyte_output_is_stored_whole_and_read_to_its_end(
    start_system: Callable[..., System],
) -> None:
    with OpenAIServer(default=reads_to_the_end) as server:
        system = start_system(env_extra={"OPENAI_BASE_URL": server.base_url})
        async with Loopline(system.kafka, producer="e2e") as client:
            run = await client.submit("Read the big text to its end.", agent="skimmer")
            outcome = await run.result(timeout=400)
    assert isinstance(outcome.payload, RunCompleted), outcome.payload
    assert outcome.payload.answer == "I read it to its end."
    # What the model saw, put together: the part shown at first, then each read, in order.
    first = server.requests[1]["messages"][-1]["content"]
    seen = first[: first.index("\n[loopline: ")]
    for request in server.requests[2:]:
        chunk = request["messages"][-1]["content"]
        seen += chunk[: chunk.rindex("\n[loopline: ")]
    assert seen == long_text_of(FIVE_MB, "big")


def counts_and_summarises(request: RecordedRequest) -> dict[str, Any]:
    """A model that counts to 12 with the calculator, one step a number, and summarises what
    it was shown when asked to."""
    messages = request["messages"]
    shown = " ".join(
        m["content"] or ""
        for m in messages
        if m["role"] == "tool" or (m["content"] or "").startswith("[loopline] Summary")
    )
    if "Summarise it" in (messages[-1]["content"] or ""):
        return text_completion(f"counted up to {max(_numbers(shown), default=0)}")
    last = max(_numbers(shown), default=0)
    if last >= 12:
        return text_completion("I counted to 12.")
    return tool_call_completion([("calculator", {"expression": f"{last} + 1"}, f"call_{last}")])


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\b(\d+)\b", text) if int(n) <= 12]


@pytest.mark.timeout(300)
async def test_a_summarising_profile_replays_and_reruns_without_a_model(
    start_system: Callable[..., System],
) -> None:
    with OpenAIServer(default=counts_and_summarises) as server:
        system = start_system(env_extra={"OPENAI_BASE_URL": server.base_url})
        async with Loopline(system.kafka, producer="e2e") as client:
            run = await client.submit("Count to 12.", agent="summarizer")
            outcome = await run.result(timeout=200)
            assert isinstance(outcome.payload, RunCompleted), getattr(
                outcome.payload, "message", ""
            )
            asked = [
                r for r in server.requests if "Summarise it" in (r["messages"][-1]["content"] or "")
            ]
            assert asked, "the window filled: the model was asked for summaries"
            calls = server.calls
            replayed = await client.replay(run.run_id)
            assert replayed.state is not None
            assert replayed.state.summary is not None
            assert "Summary of the" in replayed.state.summary.content
            hot, durable = await system.memory_states(run.run_id)
            assert replayed.state == hot == durable
            report = await client.rerun(run.run_id)
            assert not report.diverged, report.divergences[:1]
            assert server.calls == calls  # no model call, summaries included
