"""The planner reasoning with an OpenAI-compatible model: a real HTTP server speaking the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from loopline_events import FailureReason, RunCompleted, RunFailed, ToolCallSucceeded
from loopline_testing import System
from loopline_testing.openai_server import OpenAIServer

from loopline.sdk import Loopline


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def openai_system(start_system: Callable[..., System], server: OpenAIServer) -> System:
    return start_system(env_extra={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"})


async def test_a_run_reasoned_by_an_openai_compatible_model(
    openai_system: System, server: OpenAIServer
) -> None:
    server.reply_tool_calls([("calculator", {"expression": "6 * 7"})])
    server.reply_status(429, retry_after=0)  # rate limited once: the planner retries
    server.reply_text("It is 42.", usage={"prompt_tokens": 120, "completion_tokens": 4})
    async with Loopline(openai_system.kafka, producer="e2e") as client:
        run = await client.submit("What is 6 * 7?", agent="openai")
        steps = [e async for e in run.steps()]

    outcome = steps[-1].payload
    assert isinstance(outcome, RunCompleted)
    assert outcome.answer == "It is 42."
    assert outcome.usage.prompt_tokens >= 120
    tools = [e.payload for e in steps if isinstance(e.payload, ToolCallSucceeded)]
    assert [(t.tool, t.output) for t in tools] == [("calculator", "42")]
    assert server.calls == 3
    second = server.requests[-1]
    assert second["model"] == "gpt-test"
    assert second.headers["authorization"] == "Bearer sk-test"
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assert second["messages"][-1]["content"] == "42"
    assert {t["function"]["name"] for t in second["tools"]} == {"calculator", "current_time"}


async def test_a_malformed_model_response_fails_the_run_with_a_clear_error(
    openai_system: System, server: OpenAIServer
) -> None:
    server.reply_raw(200, b"<html>this is not the API</html>")
    async with Loopline(openai_system.kafka, producer="e2e") as client:
        run = await client.submit("What is 6 * 7?", agent="openai")
        outcome = (await run.result(timeout=60)).payload
    assert isinstance(outcome, RunFailed)
    assert outcome.reason is FailureReason.MODEL_ERROR
    assert "malformed reply from the model API" in outcome.message
    assert "no completion chunk" in outcome.message
