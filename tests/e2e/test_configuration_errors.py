"""Mistakes in configuration are told at once, by name, before anything runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from loopline_infra import InfraError
from loopline_testing import System
from loopline_testing._system import TEST_AGENTS

UNKNOWN_TOOL = (
    TEST_AGENTS
    + """
[agents.researcher]
system_prompt = "Look things up."
model = "demo"
tools = ["calculator", "web_search"]
"""
)


async def test_services_refuse_a_profile_naming_a_tool_nothing_provides(
    start_system: Callable[..., System],
) -> None:
    with pytest.raises(InfraError) as refused:
        await asyncio.to_thread(start_system, agents=UNKNOWN_TOOL)
    message = str(refused.value)
    assert "exited during start-up" in message
    assert "cannot start" in message
    assert "agent 'researcher' lists tool 'web_search'" in message
    assert "installed tools: calculator" in message
    assert "Traceback" not in message


WRONG_GUARDS = (
    TEST_AGENTS
    + """
[agents.payer]
system_prompt = "Pay."
model = "demo"
tools = ["calculator"]
[agents.payer.guards.spend_limit]
tool = "calculator"
argument = "expression"
[agents.payer.guards.profanity]
"""
)


async def test_services_refuse_a_profile_naming_a_guard_wrongly(
    start_system: Callable[..., System],
) -> None:
    with pytest.raises(InfraError) as refused:
        await asyncio.to_thread(start_system, agents=WRONG_GUARDS)
    message = str(refused.value)
    assert "cannot start" in message
    assert "agent 'payer', guard 'spend_limit': option max: Field required" in message
    assert "agent 'payer', guard 'profanity': no installed package offers it" in message
    assert "Traceback" not in message


async def test_submitting_to_an_unknown_agent_fails_before_anything_is_published(
    system: System,
) -> None:
    refused = await asyncio.to_thread(system.cli, "submit", "What is 1 + 1?", "--agent", "nobody")
    assert refused.returncode == 2
    assert (
        "unknown agent 'nobody' (known: calculator, claude, compact, counter, default"
        in refused.stderr
    )
    listed = await asyncio.to_thread(system.cli, "runs", "--json")
    assert listed.stdout.strip() == "[]"
