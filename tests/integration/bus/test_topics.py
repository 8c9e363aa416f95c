"""Topics on the shared broker: created as the settings ask, refused when they put data at
risk, repaired without touching what an operator set beside Loopline's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from loopline_bus import (
    TopicAdmin,
    TopicsUnfitError,
    ensure_topics,
    inspect_topics,
    repair_topics,
)
from loopline_events import TopicSpec
from loopline_runtime import ConfigurationError, KafkaSettings
from loopline_testing.plugin import delete_topics, small_topics


@pytest.fixture
async def specs(kafka_settings: KafkaSettings) -> AsyncIterator[dict[str, TopicSpec]]:
    """Every declared topic (few partitions) by its name in the test's namespace; deleted
    after."""
    yield {f"{kafka_settings.topic_prefix}{s.name}": s for s in small_topics()}
    await delete_topics(kafka_settings)


async def test_topics_are_created_with_their_min_insync_replicas_and_then_fit(
    kafka_settings: KafkaSettings, specs: dict[str, TopicSpec]
) -> None:
    await ensure_topics(kafka_settings, specs)
    async with TopicAdmin(kafka_settings) as admin:
        report = await inspect_topics(kafka_settings, specs, admin)
    assert report.missing == []
    assert report.differences == []
    goals = report.found[f"{kafka_settings.topic_prefix}agent.goals"]
    assert (goals.replication, goals.under_replicated) == (1, 0)
    assert goals.configs["min.insync.replicas"] == "1"
    assert goals.configs["retention.bytes"] == "-1"
    assert goals.configs["cleanup.policy"] == "delete"


async def test_more_copies_than_live_brokers_are_refused_before_anything_is_created(
    kafka_settings: KafkaSettings, specs: dict[str, TopicSpec]
) -> None:
    three = kafka_settings.model_copy(update={"replication_factor": 3})
    with pytest.raises(ConfigurationError) as refused:
        await ensure_topics(three, specs)
    assert "with 3 copies (LOOPLINE_KAFKA_REPLICATION_FACTOR=3)" in str(refused.value)
    assert "the cluster has 1 live broker(s)" in str(refused.value)
    async with TopicAdmin(kafka_settings) as admin:
        assert not set(specs) & await admin.existing()


async def test_a_risky_topic_refuses_the_start_and_the_fix_keeps_the_operators_settings(
    kafka_settings: KafkaSettings, specs: dict[str, TopicSpec]
) -> None:
    await ensure_topics(kafka_settings, specs)
    goals = f"{kafka_settings.topic_prefix}agent.goals"
    results = f"{kafka_settings.topic_prefix}agent.results"
    async with TopicAdmin(kafka_settings) as admin:
        await admin.set_configs(
            {
                goals: {"retention.ms": "86400000", "compression.type": "lz4"},
                results: {"cleanup.policy": "compact"},
            }
        )

    with pytest.raises(TopicsUnfitError) as refused:
        await ensure_topics(kafka_settings, specs)
    message = str(refused.value)
    assert message.startswith("2 topic(s) on the cluster put data at risk as they are:")
    assert f"{goals}: retention.ms is 86400000 (1 day), wanted -1 (forever)" in message
    assert f"{results}: cleanup.policy is compact, wanted delete" in message
    assert message.endswith(
        f"LOOPLINE_KAFKA_TOPIC_PREFIX={kafka_settings.topic_prefix} loopline infra topics --fix"
    )

    said: list[str] = []
    after = await repair_topics(kafka_settings, specs, say=said.append)
    assert after.differences == []
    assert said == ["setting 2 configuration(s) of 2 topic(s)"]
    await ensure_topics(kafka_settings, specs)
    async with TopicAdmin(kafka_settings) as admin:
        found = await admin.configs({goals: ["retention.ms", "compression.type"]})
    assert found[goals] == {"retention.ms": "-1", "compression.type": "lz4"}
