"""Real providers end to end: the four services as processes, the planner talking to test
servers that speak the OpenAI and the Anthropic APIs over real HTTP (streams included).

A run on Anthropic caches its prompt and pays cached tokens as cached; text streams to
`loopline submit --wait` before the step's decision, and a retried call does not repeat it;
a provider that is down hands the steps to the profile's fallback; a tenant over its daily
quota is failed or paused, the other tenant is not.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from loopline_events import (
    DelayReason,
    FailureReason,
    ModelCallDelayed,
    ModelDecided,
    RunCancelled,
    RunCompleted,
    RunFailed,
    TextChunk,
    TokenUsage,
    ToolCallSucceeded,
)
from loopline_memory import reads
from loopline_runtime import Endpoints, price_of, schema_name
from loopline_testing import System
from loopline_testing.anthropic_server import AnthropicServer
from loopline_testing.openai_server import OpenAIServer, RecordedRequest, text_completion

from loopline.sdk import Loopline

CLAUDE = "anthropic:claude-sonnet-4-5"
EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as running:
        yield running


def provider_env(openai_url: str, anthropic_url: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": openai_url,
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": anthropic_url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
    }


async def ledger(endpoints: Endpoints, system: System, run_id: str) -> list[reads.UsageEntry]:
    conn = await asyncpg.connect(endpoints.postgres.dsn.get_secret_value())
    try:
        schema = schema_name("memory", system.kafka.topic_prefix)
        return await reads.usage(conn, schema, run_id)
    finally:
        await conn.close()


async def test_a_run_on_anthropic_calls_tools_caches_its_prompt_and_pays_cached_as_cached(
    start_system: Callable[..., System],
    anthropic_server: AnthropicServer,
    openai_server: OpenAIServer,
    loopline_endpoints: Endpoints,
) -> None:
    system = start_system(env_extra=provider_env(openai_server.base_url, anthropic_server.base_url))
    anthropic_server.reply_tool_use([("calculator", {"expression": "6 * 7"})])
    anthropic_server.reply_text("It is 42.")
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 6 * 7?", agent="claude")
        steps = [e async for e in run.steps()]

    outcome = steps[-1].payload
    assert isinstance(outcome, RunCompleted), outcome
    assert outcome.answer == "It is 42."
    tools = [e.payload for e in steps if isinstance(e.payload, ToolCallSucceeded)]
    assert [(t.tool, t.output) for t in tools] == [("calculator", "42")]
    # Every request marks its stable prefix: system prompt, tool list, history so far.
    for request in anthropic_server.requests:
        assert request["model"] == "claude-sonnet-4-5"
        assert request["system"][-1]["cache_control"] == EPHEMERAL
        assert request["tools"][-1]["cache_control"] == EPHEMERAL
        assert request["messages"][-1]["content"][-1]["cache_control"] == EPHEMERAL
    decisions = [e.payload for e in steps if isinstance(e.payload, ModelDecided)]
    assert [d.model for d in decisions] == [CLAUDE, CLAUDE]
    first, second = (d.usage for d in decisions)
    assert (first.cached_tokens, second.cached_tokens) == (0, first.cache_write_tokens)
    assert outcome.usage.cached_tokens == second.cached_tokens > 0
    # The usage ledger prices cached tokens at the cached-input price.
    rows = await ledger(loopline_endpoints, system, run.run_id)
    assert [(r.seq, r.model, r.cached_tokens) for r in rows] == [
        (1, CLAUDE, 0),
        (2, CLAUDE, second.cached_tokens),
    ]
    row = rows[1]
    assert row.cache_write_tokens == second.cache_write_tokens
    price = price_of(CLAUDE)
    assert row.cost_usd == pytest.approx(price.of(second), abs=1e-9)
    full_price = price.of(TokenUsage(prompt_tokens=row.prompt_tokens))
    assert row.cost_usd < full_price + price.of(TokenUsage(completion_tokens=row.completion_tokens))


async def read_lines(process: asyncio.subprocess.Process) -> list[tuple[float, str]]:
    assert process.stdout is not None
    lines = []
    while line := await process.stdout.readline():
        lines.append((time.monotonic(), line.decode().rstrip("\n")))
    return lines


async def test_text_reaches_submit_wait_before_the_steps_decision(
    start_system: Callable[..., System], openai_server: OpenAIServer
) -> None:
    system = start_system(env_extra=provider_env(openai_server.base_url, "http://127.0.0.1:9"))
    answer = "Six times seven is forty-two, as the calculator would also say."
    openai_server.reply_text(answer, chunk_delay_s=0.25)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loopline.cli",
        "submit",
        "What is 6 * 7?",
        "--agent",
        "openai",
        "--wait",
        "--json",
        "--timeout",
        "60",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **system.env},
    )
    lines = await asyncio.wait_for(read_lines(process), 90)
    assert await process.wait() == 0
    shown = [(t, json.loads(text)) for t, text in lines[1:]]  # after "submitted"
    chunks = [(t, item) for t, item in shown if item["type"] == "TextChunk"]
    decided = next(t for t, item in shown if item["type"] == "ModelDecided")
    assert len(chunks) > 1
    assert "".join(item["text"] for _, item in chunks) == answer
    # The first words were printed while the model was still writing: well before the
    # decision (the server takes 0.25 s a piece).
    assert decided - chunks[0][0] >= 1.0
    order = [item["type"] for _, item in shown]
    assert order.index("TextChunk") < order.index("ModelDecided")


async def test_a_retried_call_does_not_show_its_text_twice(
    start_system: Callable[..., System], openai_server: OpenAIServer
) -> None:
    system = start_system(env_extra=provider_env(openai_server.base_url, "http://127.0.0.1:9"))
    answer = "Forty-two is the product of six and seven."
    # The first call's stream breaks after a few pieces; the retry writes the whole answer.
    openai_server.reply_text(answer, chunk_delay_s=0.15, break_after=4)
    openai_server.reply_text(answer, chunk_delay_s=0.05)
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 6 * 7?", agent="openai")
        items = [item async for item in run.follow()]

    assert isinstance(run.outcome and run.outcome.payload, RunCompleted)
    chunks = [i for i in items if isinstance(i, TextChunk)]
    assert openai_server.calls == 2
    assert {c.attempt for c in chunks} == {1, 2}  # text came from both calls...
    assert not any(c.rewrite for c in chunks)
    assert "".join(c.text for c in chunks) == answer  # ...and shows once


async def test_a_provider_that_is_down_hands_its_steps_to_the_fallback(
    start_system: Callable[..., System], anthropic_server: AnthropicServer
) -> None:
    with OpenAIServer() as gone:
        dead = gone.base_url  # closed on leaving: nothing listens there now
    env = provider_env(dead, anthropic_server.base_url)
    system = start_system(env_extra={**env, "LOOPLINE_PLANNER_MODEL_MAX_ATTEMPTS": "2"})
    anthropic_server.reply_tool_use([("calculator", {"expression": "6 * 7"})])
    anthropic_server.reply_text("It is 42.")
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 6 * 7?", agent="fallback")
        steps = [e async for e in run.steps()]

    outcome = steps[-1].payload
    assert isinstance(outcome, RunCompleted), outcome
    decisions = [e.payload for e in steps if isinstance(e.payload, ModelDecided)]
    assert [(d.model, d.fallback_from) for d in decisions] == [(CLAUDE, "openai:gpt-test")] * 2
    assert anthropic_server.calls == 2


QUOTAS = """
[tenants.greedy]
tokens_per_day = 100
[tenants.frugal]
tokens_per_day = 100
"""


async def test_a_tenant_over_its_daily_tokens_is_failed_or_paused_and_the_other_is_not(
    start_system: Callable[..., System], openai_server: OpenAIServer
) -> None:
    def answer(request: RecordedRequest) -> dict[str, Any]:
        return text_completion("done", usage={"prompt_tokens": 150, "completion_tokens": 5})

    openai_server.default = answer
    env = provider_env(openai_server.base_url, "http://127.0.0.1:9")
    system = start_system(env_extra=env, limits=QUOTAS)
    async with Loopline(system.kafka, producer="e2e") as client:
        spent = await client.submit("Say done", agent="quota_fail", tenant="greedy")
        assert isinstance((await spent.result(timeout=60)).payload, RunCompleted)  # 155 tokens
        over = await client.submit("Say done again", agent="quota_fail", tenant="greedy")
        other = await client.submit("Say done", agent="quota_fail", tenant="frugal")
        failed = (await over.result(timeout=60)).payload
        fine = (await other.result(timeout=60)).payload
        paused = await client.submit("Say done later", agent="quota_pause", tenant="greedy")
        waits: list[ModelCallDelayed] = []
        async with asyncio.timeout(60):
            async for event in paused.steps():
                if isinstance(event.payload, ModelCallDelayed) and not waits:
                    waits.append(event.payload)  # it waits for the quota: enough seen
                    await client.cancel(paused.run_id, reason="seen waiting", tenant="greedy")
        cancelled = paused.outcome.payload if paused.outcome else None

    assert isinstance(failed, RunFailed), failed
    assert failed.reason is FailureReason.QUOTA_EXCEEDED
    assert "tenant 'greedy' is over its quota" in failed.message
    assert isinstance(fine, RunCompleted), fine
    assert [w.reason for w in waits] == [DelayReason.QUOTA]
    assert isinstance(cancelled, RunCancelled)
    # The over-quota runs never reached the model: one call each for the two that completed.
    assert openai_server.calls == 2
