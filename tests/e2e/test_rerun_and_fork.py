"""Deterministic re-run and fork, on the real system, with a counting model server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from loopline_bus import read_history
from loopline_events import (
    ModelDecided,
    RunCompleted,
    ToolCallSucceeded,
    Window,
)
from loopline_memory.domain import window
from loopline_testing import System
from loopline_testing.openai_server import OpenAIServer

from loopline.sdk import Loopline

CHAIN = "Compute 17 + 25, then multiply the result by 3, then subtract 6"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def openai_system(start_system: Callable[..., System], server: OpenAIServer) -> System:
    return start_system(env_extra={"OPENAI_BASE_URL": server.base_url})


async def count(system: System, topic: str) -> int:
    return len(await read_history(system.kafka, [topic]))


async def test_rerun_calls_nothing_and_reports_no_divergence_until_the_reducer_changes(
    openai_system: System, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.reply_tool_calls([("calculator", {"expression": "6 * 7"})])
    server.reply_text("It is 42.")
    async with Loopline(openai_system.kafka, producer="e2e") as client:
        run = await client.submit("What is 6 * 7?", agent="openai")
        assert isinstance((await run.result(timeout=60)).payload, RunCompleted)
        calls = server.calls
        observed = await count(openai_system, "agent.observations")

        report = await client.rerun(run.run_id)
        assert report.divergences == []
        assert report.compared == 3  # two contexts and the result
        assert server.calls == calls  # no model call
        assert await count(openai_system, "agent.observations") == observed  # no tool call

        # Today's reducer shows the model less than the one that ran: the contexts differ.
        monkeypatch.setattr(window, "plan", lambda *_: window.Plan(Window(head=1, start=1)))
        changed = await client.rerun(run.run_id)
    assert changed.diverged
    assert changed.divergences[0].step == 1
    assert changed.divergences[0].what == "ContextAssembled differs"
    assert server.calls == calls


async def test_a_fork_with_another_model_reuses_the_first_steps_and_goes_on_alone(
    openai_system: System, server: OpenAIServer
) -> None:
    server.reply_text("126 - 6 = 120, so the answer is 120.")
    async with Loopline(openai_system.kafka, producer="e2e") as client:
        parent = await client.submit(CHAIN)
        assert isinstance((await parent.result(timeout=60)).payload, RunCompleted)
        assert server.calls == 0  # the parent ran on the demo model

        child = await client.fork(parent.run_id, from_step=2, model="openai:gpt-test")
        steps = [e async for e in child.steps()]
        outcome = steps[-1].payload
        assert isinstance(outcome, RunCompleted)
        assert outcome.answer == "126 - 6 = 120, so the answer is 120."

        assert server.calls == 1  # only step 3 asked the model
        asked = server.requests[0]["messages"]
        assert [m.get("content") for m in asked if m["role"] == "tool"] == ["42", "126"]
        assert all(e.seq >= 3 for e in steps)
        assert not [
            e
            for e in steps
            if isinstance(e.payload, ToolCallSucceeded | ModelDecided) and e.seq <= 2
        ]

        parent_state = (await client.replay(parent.run_id)).state
        child_state = (await client.replay(child.run_id)).state
    assert parent_state is not None
    assert child_state is not None
    assert parent_state.forks == (child.run_id,)
    assert (child_state.parent_run_id, child_state.forked_at_step) == (parent.run_id, 2)
    assert child_state.model == "openai:gpt-test"
