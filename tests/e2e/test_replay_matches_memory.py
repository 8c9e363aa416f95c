"""Replay: folding a run's events from Kafka rebuilds exactly the state memory holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from loopline_events import Budget, FailureReason, RunCompleted, RunFailed
from loopline_memory.domain import RunState
from loopline_testing import System
from loopline_testing.openai_server import OpenAIServer

from loopline.sdk import Loopline


async def live_states(system: System, run_id: str) -> tuple[str, str]:
    """Memory's state of the run, serialised, from Redis and from PostgreSQL."""
    hot, durable = await system.memory_states(run_id)
    assert hot is not None
    assert durable is not None
    return hot.model_dump_json(), durable.model_dump_json()


async def replayed_state(client: Loopline, run_id: str) -> RunState:
    state = (await client.replay(run_id)).state
    assert state is not None
    return state


async def assert_replay_equals_live(client: Loopline, system: System, run_id: str) -> RunState:
    """Replay equals memory's state once memory has folded what the log holds: a step in flight
    when a run ends (a cancelled run's last tool result) may land between the replay's read
    and memory's, so the two are compared again, briefly, until memory has caught up."""
    for _ in range(50):
        replayed = await replayed_state(client, run_id)
        hot, durable = await live_states(system, run_id)
        if replayed.model_dump_json() == hot == durable:
            break
        await asyncio.sleep(0.2)
    assert replayed.model_dump_json() == hot == durable
    return replayed


async def test_replay_equals_live_state_for_completed_failed_and_cancelled_runs(
    system: System,
) -> None:
    async with Loopline(system.kafka, producer="e2e") as client:
        done = await client.submit("Compute 2 + 3, then multiply the result by 4")
        assert isinstance((await done.result(timeout=60)).payload, RunCompleted)
        state = await assert_replay_equals_live(client, system, done.run_id)
        assert state.answer is not None
        assert "20" in state.answer

        failed = await client.submit("Count to 50", budget=Budget(max_steps=3))
        outcome = (await failed.result(timeout=60)).payload
        assert isinstance(outcome, RunFailed)
        state = await assert_replay_equals_live(client, system, failed.run_id)
        assert state.failure is FailureReason.MAX_STEPS

        long = await client.submit("Count to 2000", budget=Budget(max_steps=2000))
        async for event in long.steps():
            if event.seq >= 3:
                break
        await client.cancel(long.run_id, reason="enough")
        await wait_until_finished(system, long.run_id)
        state = await assert_replay_equals_live(client, system, long.run_id)
        assert state.status.value == "cancelled"
        assert 3 <= state.step < 2000

    # What an operator runs: every state memory holds is the one the run's events rebuild.
    runs = (done.run_id, failed.run_id, long.run_id)
    checked = await asyncio.to_thread(system.cli, "replay", "--check", *runs)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [f"{run_id}  same" for run_id in runs]
    unknown = await asyncio.to_thread(system.cli, "replay", "--check", done.run_id, "no-such-run")
    assert unknown.returncode == 1
    assert "the log holds no event of run no-such-run" in unknown.stderr


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


async def test_state_at_step_k_is_what_memory_held_then_and_model_failures_replay(
    start_system: Callable[..., System], server: OpenAIServer
) -> None:
    system = start_system(env_extra={"OPENAI_BASE_URL": server.base_url})
    server.reply_tool_calls([("calculator", {"expression": "6 * 7"})])
    server.reply_text("It is 42.", delay_s=5)  # holds the run at step 2 while we look
    async with Loopline(system.kafka, producer="e2e") as client:
        run = await client.submit("What is 6 * 7?", agent="openai")
        held = None
        for _ in range(100):
            hot = await hot_state(system, run.run_id)
            if hot is not None and RunState.model_validate_json(hot).step == 2:
                held = hot
                break
            await asyncio.sleep(0.05)
        assert held is not None, "memory never reached step 2"
        assert isinstance((await run.result(timeout=60)).payload, RunCompleted)

        at_two = await client.replay(run.run_id, at_step=2)
        assert at_two.state is not None
        assert at_two.state.model_dump_json() == held
        await assert_replay_equals_live(client, system, run.run_id)

        server.reply_raw(200, b"not the API")
        broken = await client.submit("What is 6 * 7?", agent="openai")
        outcome = (await broken.result(timeout=60)).payload
        assert isinstance(outcome, RunFailed)
        assert outcome.reason is FailureReason.MODEL_ERROR
        await assert_replay_equals_live(client, system, broken.run_id)


async def hot_state(system: System, run_id: str) -> str | None:
    """Memory's state of the run in Redis, serialised, if it has one."""
    hot, _ = await system.memory_states(run_id)
    return None if hot is None else hot.model_dump_json()


async def wait_until_finished(system: System, run_id: str) -> None:
    for _ in range(600):
        hot = await hot_state(system, run_id)
        if hot is not None and RunState.model_validate_json(hot).finished:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")
