"""What Loopline wants of each topic, and which differences from it refuse a start."""

from __future__ import annotations

import pytest
from loopline_bus import (
    Found,
    Repair,
    TopicsUnfitError,
    Wanted,
    compare,
    durability,
    fix_command,
    spread,
    summarise,
)
from loopline_events import CONTEXTS, GOALS, RETRY_TOPICS, TopicClass, TopicSpec
from loopline_runtime import ConfigurationError, KafkaSettings


def settings(**given: object) -> KafkaSettings:
    return KafkaSettings.model_validate(given)


def wanted(spec: TopicSpec, replication: int = 3, **given: object) -> Wanted:
    return Wanted(f"ns.{spec.name}", spec, durability(spec.kind, settings(**given), replication))


def found_as_wanted(w: Wanted, **changes: object) -> Found:
    configs = {**w.configs(), **{k.replace("_", "."): str(v) for k, v in changes.items()}}
    return Found(w.topic, w.spec.partitions, w.durability.replication, configs)


@pytest.mark.parametrize(
    ("cluster_default", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (5, 4))]
)
def test_unset_settings_follow_the_cluster_default_with_one_copy_fewer_in_sync(
    cluster_default: int, expected: tuple[int, int]
) -> None:
    d = durability(TopicClass.RUN, settings(), cluster_default)
    assert (d.replication, d.min_insync) == expected
    assert d.replication_source == f"the cluster's default.replication.factor={cluster_default}"


def test_a_class_setting_wins_over_the_general_one_which_wins_over_the_cluster() -> None:
    given = settings(
        replication_factor=3,
        min_insync_replicas=2,
        replication_by_class={"retry": 2},
        min_insync_by_class={"retry": 1},
    )
    run = durability(TopicClass.RUN, given, 1)
    retry = durability(TopicClass.RETRY, given, 1)
    assert (run.replication, run.min_insync) == (3, 2)
    assert (retry.replication, retry.min_insync) == (2, 1)
    assert retry.replication_source == "LOOPLINE_KAFKA_REPLICATION_BY_CLASS[retry]=2"
    assert run.min_insync_source == "LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS=2"


def test_impossible_settings_are_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="more than their replication factor 2"):
        durability(TopicClass.RUN, settings(replication_factor=2, min_insync_replicas=3), 1)
    with pytest.raises(ConfigurationError, match="no topic class named 'runs'"):
        durability(TopicClass.RUN, settings(replication_by_class={"runs": 3}), 1)


def test_a_topic_as_wanted_differs_in_nothing() -> None:
    for spec in (GOALS, GOALS.dlq, CONTEXTS, RETRY_TOPICS[0]):
        w = wanted(spec)
        assert compare(w, found_as_wanted(w)) == []


def test_fewer_copies_or_fewer_in_sync_put_data_at_risk_more_do_not() -> None:
    w = wanted(GOALS, replication_factor=3)
    one_copy = Found(w.topic, 12, 1, {**w.configs(), "min.insync.replicas": "1"})
    risks = compare(w, one_copy)
    assert [(d.setting, d.found, d.wanted, d.risky) for d in risks] == [
        ("replication factor", "1", "3", True),
        ("min.insync.replicas", "1", "2", True),
    ]
    assert risks[0].repair is Repair.REASSIGN
    assert risks[0].source == "LOOPLINE_KAFKA_REPLICATION_FACTOR=3"
    more = Found(w.topic, 12, 4, {**w.configs(), "min.insync.replicas": "3"})
    assert [(d.setting, d.risky, d.repair) for d in compare(w, more)] == [
        ("replication factor", False, Repair.NONE),
        ("min.insync.replicas", False, Repair.CONFIGURE),
    ]


def test_finite_retention_risks_a_topic_kept_forever_only() -> None:
    day = 86_400_000
    goals, dead, contexts = wanted(GOALS), wanted(GOALS.dlq), wanted(CONTEXTS)
    assert [d.risky for d in compare(goals, found_as_wanted(goals, retention_ms=day))] == [True]
    assert [d.risky for d in compare(dead, found_as_wanted(dead, retention_bytes=10**9))] == [True]
    shorter = compare(contexts, found_as_wanted(contexts, retention_ms=day))
    assert [(d.setting, d.found, d.risky) for d in shorter] == [
        ("retention.ms", "86400000 (1 day)", False)
    ]


def test_compaction_and_a_smaller_message_limit_are_risks_a_larger_limit_is_not() -> None:
    w = wanted(CONTEXTS)
    compacted = compare(w, found_as_wanted(w, cleanup_policy="compact"))
    assert [(d.setting, d.risky) for d in compacted] == [("cleanup.policy", True)]
    smaller = compare(w, found_as_wanted(w, max_message_bytes=1000))
    assert [(d.setting, d.risky) for d in smaller] == [("max.message.bytes", True)]
    larger = compare(w, found_as_wanted(w, max_message_bytes=10**7))
    assert [(d.setting, d.risky) for d in larger] == [("max.message.bytes", False)]


def test_partition_counts_differ_harmlessly_and_only_fewer_can_be_grown() -> None:
    w = wanted(GOALS)
    fewer = Found(w.topic, 4, 3, w.configs())
    more = Found(w.topic, 24, 3, w.configs())
    assert [(d.risky, d.repair) for d in compare(w, fewer)] == [(False, Repair.GROW)]
    [extra] = compare(w, more)
    assert (extra.risky, extra.repair) == (False, Repair.NONE)
    assert "can only grow" in extra.why


def test_the_refusal_names_topics_setting_value_and_the_command_with_its_settings() -> None:
    given = settings(bootstrap="k1:9092,k2:9092", topic_prefix="prod.", replication_factor=3)
    ws = [Wanted(f"prod.{s.name}", s, durability(s.kind, given, 1)) for s in (GOALS, CONTEXTS)]
    one_copy = {"min.insync.replicas": "1"}
    risks = [d for w in ws for d in compare(w, Found(w.topic, 12, 1, w.configs() | one_copy))]
    message = str(TopicsUnfitError([d for d in risks if d.risky], given))
    assert "2 topic(s) on the cluster put data at risk" in message
    assert (
        "prod.agent.goals, prod.agent.contexts: replication factor is 1, wanted 3 "
        "(LOOPLINE_KAFKA_REPLICATION_FACTOR=3)"
    ) in message
    assert message.endswith(
        "Fix: LOOPLINE_KAFKA_BOOTSTRAP=k1:9092,k2:9092 LOOPLINE_KAFKA_TOPIC_PREFIX=prod. "
        "LOOPLINE_KAFKA_REPLICATION_FACTOR=3 loopline infra topics --fix"
    )
    assert [line.split(": ")[1] for line in summarise(risks)] == [
        "replication factor is 1, wanted 3 (LOOPLINE_KAFKA_REPLICATION_FACTOR=3)",
        "min.insync.replicas is 1, wanted 2 (the replication factor minus one (2))",
    ]


def test_default_settings_need_no_variables_to_fix() -> None:
    assert fix_command(settings()) == "loopline infra topics --fix"
    assert fix_command(settings(replication_by_class={"retry": 2})) == (
        "LOOPLINE_KAFKA_REPLICATION_BY_CLASS='{\"retry\": 2}' loopline infra topics --fix"
    )


def test_new_copies_go_to_the_least_loaded_brokers_and_the_leader_stays_first() -> None:
    current = {"a": {0: [1], 1: [2], 2: [3], 3: [1]}, "b": {0: [2, 3]}}
    moves = spread(current, [1, 2, 3], {"a": 2, "b": 2})
    assert "b" not in moves  # already has its two copies
    assert {p: replicas[0] for p, replicas in moves["a"].items()} == {0: 1, 1: 2, 2: 3, 3: 1}
    assert all(len(set(r)) == 2 for r in moves["a"].values())
    load = [b for parts in moves.values() for r in parts.values() for b in r[1:]]
    assert sorted(load) == [1, 1, 2, 3]  # broker 1 held the fewest copies: it gets two
