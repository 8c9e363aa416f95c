"""The layout of the local Kafka: one node as it always was, or three on the next ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from loopline_infra import Infra, InfraError, Paths, default_paths, default_ports


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(project=default_paths().project, home=tmp_path, cache=tmp_path / "cache")


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def test_a_single_node_keeps_its_name_folder_and_quorum(paths: Paths) -> None:
    infra = Infra(paths, default_ports(), brokers=1)
    (kafka,) = infra.kafka_nodes
    assert (kafka.name, kafka.dir) == ("kafka", paths.home / "kafka")
    assert infra.env()["LOOPLINE_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    credentials = infra.store.ensure(infra.cluster_endpoints())
    rendered = properties(kafka.render(credentials))
    assert rendered["node.id"] == "1"
    assert rendered["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert rendered["default.replication.factor"] == "1"
    assert rendered["min.insync.replicas"] == "1"
    # Secured: SCRAM (and PLAIN on the loopback listener), nothing without an ACL.
    assert rendered["listeners"].startswith("SASL_PLAINTEXT://127.0.0.1:")
    assert rendered["allow.everyone.if.no.acl.found"] == "false"
    assert rendered["super.users"] == "User:admin;User:controller"
    plain = rendered["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    operator = credentials.principal("operator").kafka.password.get_secret_value()
    assert f'user_operator="{operator}"' in plain
    assert "user_admin=" not in plain


def test_three_nodes_take_the_next_ports_and_keep_three_copies_two_in_sync(paths: Paths) -> None:
    infra = Infra(paths, default_ports(), brokers=3)
    assert [c.name for c in infra.components] == [
        "postgres",
        "redis",
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "prometheus",
    ]
    assert infra.bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    second = properties(infra.kafka_node(2).render(infra.store.ensure(infra.cluster_endpoints())))
    assert second["node.id"] == "2"
    assert second["listeners"] == ("SASL_PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095")
    assert second["controller.quorum.bootstrap.servers"] == (
        "127.0.0.1:19093,127.0.0.1:19095,127.0.0.1:19097"
    )
    assert second["log.dirs"] == str(paths.home / "kafka-2" / "data")
    for name, value in {
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "broker.session.timeout.ms": "6000",
    }.items():
        assert second[name] == value, name


def test_the_other_layout_is_refused_while_one_runs_on_the_same_ports(paths: Paths) -> None:
    running = paths.home / "kafka" / "kafka.pid"
    running.parent.mkdir(parents=True)
    running.write_text(f"{os.getpid()}\n")  # a live process stands for the running broker
    with pytest.raises(InfraError, match=r"a Kafka of 1 broker\(s\) runs from this home"):
        Infra(paths, default_ports(), brokers=3).check_layout()
    Infra(paths, default_ports(), brokers=1).check_layout()  # the same layout: fine


def test_only_one_or_three_brokers(paths: Paths) -> None:
    with pytest.raises(InfraError, match="1 or 3 brokers, not 2"):
        Infra(paths, default_ports(), brokers=2)
