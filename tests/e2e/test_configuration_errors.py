"""Mistakes in configuration are told at once, by name, before anything runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from loopline_bus import KafkaBus
from loopline_events import GOALS
from loopline_infra import InfraError
from loopline_runtime import Endpoints, KafkaSettings
from loopline_testing import System
from loopline_testing._system import TEST_AGENTS
from loopline_testing.plugin import TEST_PARTITIONS

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
    kafka_bus: KafkaBus, loopline_endpoints: Endpoints, topic_prefix: str, tmp_path: Path
) -> None:
    agents = tmp_path / "agents.toml"
    agents.write_text(TEST_AGENTS)
    env = {
        **os.environ,
        **loopline_endpoints.env(),
        "LOOPLINE_KAFKA_TOPIC_PREFIX": topic_prefix,
        "LOOPLINE_AGENTS_FILE": str(agents),
    }
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "loopline.cli", "submit", "What is 1 + 1?", "--agent", "nobody"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert (
        "unknown agent 'nobody' (known: calculator, claude, compact, counter, default"
        in refused.stderr
    )
    assert await _records(kafka_bus.settings, GOALS.name) == 0


async def _records(kafka: KafkaSettings, topic: str) -> int:
    """How many records `topic` of the namespace has ever held (its topics made by
    `kafka_bus`)."""
    consumer = AIOKafkaConsumer(**kafka.client_options())
    await consumer.start()
    try:
        name = kafka.topic_prefix + topic
        partitions = [TopicPartition(name, p) for p in range(TEST_PARTITIONS)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()
