"""The table of who may do what on Kafka (docs/decisions/0022), checked as the brokers would
apply it: every principal's rights in a namespace, and nothing beyond."""

from __future__ import annotations

import pytest
from loopline_events import (
    ALL_TOPICS,
    CONTEXTS,
    CONTROL,
    DECISIONS,
    GOALS,
    OBSERVATIONS,
    RESULTS,
    STREAM,
    dlq_name,
)
from loopline_infra import OPERATOR, SERVICE_PRINCIPALS, namespace_acls
from loopline_infra._acls import (
    CLUSTER,
    Acl,
    Operation,
    Pattern,
    Resource,
    client_principal,
    own_acls,
    permits,
    tenant_acls,
)

NAMESPACE = "t1234."
TENANTS = ("default", "acme")
ACLS = namespace_acls(NAMESPACE, TENANTS)
STREAMED = (CONTEXTS.name, DECISIONS.name, OBSERVATIONS.name, RESULTS.name, STREAM.name)
"""What the SDK follows of a run it submitted: its steps, its end and its model's text."""
EVERYONE = (*SERVICE_PRINCIPALS, OPERATOR, *(client_principal(t) for t in TENANTS))
"""Every principal the table names; `admin`, a super user, is none of them."""


def writers(topic: str, acls: list[Acl] = ACLS) -> set[str]:
    """The principals that may write `topic` of the namespace."""
    return {
        p
        for p in EVERYONE
        if permits(acls, f"User:{p}", Resource.TOPIC, NAMESPACE + topic, Operation.WRITE)
    }


def readers(topic: str) -> set[str]:
    return {
        p
        for p in EVERYONE
        if permits(ACLS, f"User:{p}", Resource.TOPIC, NAMESPACE + topic, Operation.READ)
    }


def may_join(principal: str, group: str) -> bool:
    return permits(ACLS, f"User:{principal}", Resource.GROUP, NAMESPACE + group, Operation.READ)


def test_each_loop_topic_is_written_by_its_producer_and_no_client() -> None:
    # Recovery sends a dead letter back where it came from (retries, redrives), so it writes
    # every topic a dead letter can come from; the operator administers the namespace.
    assert writers(RESULTS.name) == {"memory", OPERATOR}
    assert writers(CONTEXTS.name) == {"memory", "recovery", OPERATOR}
    # Memory hands the executor a held call a person approved (ToolCallApproved).
    assert writers(DECISIONS.name) == {"planner", "memory", "recovery", OPERATOR}
    # Memory answers the memory tools itself (remember, recall) on observations.
    assert writers(OBSERVATIONS.name) == {"tool-executor", "memory", "recovery", OPERATOR}
    clients = {client_principal(t) for t in TENANTS}
    assert writers(GOALS.name) == {"memory", "recovery", "gateway", OPERATOR, *clients}
    # The planner fails a run over its tenant's quota; it alone streams the models' text.
    assert writers(CONTROL.name) == {"memory", "planner", "recovery", "gateway", OPERATOR, *clients}
    assert writers(STREAM.name) == {"planner", OPERATOR}


def test_a_client_writes_goals_and_control_reads_runs_and_nothing_else() -> None:
    client = client_principal("acme")
    for spec in ALL_TOPICS:
        name = NAMESPACE + spec.name
        may_write = permits(ACLS, f"User:{client}", Resource.TOPIC, name, Operation.WRITE)
        may_read = permits(ACLS, f"User:{client}", Resource.TOPIC, name, Operation.READ)
        assert may_write == (spec.name in (GOALS.name, CONTROL.name)), spec.name
        assert may_read == (spec.name in STREAMED), spec.name
    assert not permits(
        ACLS, f"User:{client}", Resource.CLUSTER, CLUSTER, Operation.DESCRIBE_CONFIGS
    )
    assert tenant_acls(NAMESPACE, "acme") == [a for a in ACLS if a.principal == f"User:{client}"]


def test_each_service_joins_its_own_groups_only() -> None:
    assert may_join("memory", "memory")
    assert may_join("planner", "planner")
    assert may_join("tool-executor", "tool-executor")
    assert may_join("recovery", "recovery.watchdog")
    for principal in ("planner", "tool-executor", "recovery", "gateway", "client-acme"):
        assert not may_join(principal, "memory"), principal
    assert not may_join("memory", "planner")
    assert not may_join("client-acme", "tool-executor")
    assert may_join("client-acme", "client-acme.results")
    assert not may_join("client-acme", "client-default.results")
    assert not any(may_join(p, "gateway") for p in SERVICE_PRINCIPALS)


def test_every_consumer_may_dead_letter_what_it_reads() -> None:
    assert "memory" in writers(dlq_name(GOALS.name))
    assert "memory" in writers(dlq_name(OBSERVATIONS.name))
    assert "planner" in writers(dlq_name(CONTEXTS.name))
    assert "tool-executor" in writers(dlq_name(DECISIONS.name))
    assert readers(dlq_name(DECISIONS.name)) == {"recovery", OPERATOR}


@pytest.mark.parametrize("principal", SERVICE_PRINCIPALS)
def test_a_service_names_its_topics_one_by_one(principal: str) -> None:
    # `agent.decisions` as a prefix would also grant `agent.decisions.dlq`: services' topic
    # rights are literal, only DESCRIBE spans the namespace.
    own = [a for a in ACLS if a.principal == f"User:{principal}"]
    assert own
    for acl in own:
        assert acl.operation is not Operation.ALL
        if acl.resource is Resource.TOPIC and acl.pattern is Pattern.PREFIXED:
            assert acl.operation in (Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS), acl


def test_a_namespace_grants_nothing_in_another() -> None:
    other = "t9999."
    for acl in ACLS:
        if acl.resource is Resource.CLUSTER:
            assert acl.name == CLUSTER
            assert acl.operation is Operation.DESCRIBE_CONFIGS
        else:
            assert acl.name.startswith(NAMESPACE), acl
            assert not permits(
                ACLS, acl.principal, acl.resource, other + acl.name[len(NAMESPACE) :], acl.operation
            ), acl


def test_dropping_a_namespace_revokes_nothing_another_namespace_holds() -> None:
    other = namespace_acls("t9999.", TENANTS)
    dropped = own_acls(other)
    assert not set(dropped) & set(ACLS)
    assert set(other) - set(dropped) == {a for a in ACLS if a.resource is Resource.CLUSTER}
    assert {a.principal for a in other if a.resource is Resource.CLUSTER} == {
        f"User:{p}" for p in (*SERVICE_PRINCIPALS, OPERATOR)
    }


def test_the_unprefixed_namespace_gives_the_operator_every_group() -> None:
    acls = namespace_acls("")
    assert permits(acls, f"User:{OPERATOR}", Resource.GROUP, "anything", Operation.DELETE)
    assert permits(acls, f"User:{OPERATOR}", Resource.TOPIC, "agent.results", Operation.WRITE)
    assert not permits(acls, f"User:{OPERATOR}", Resource.TOPIC, "payroll", Operation.READ)


def test_a_tenant_name_must_fit_a_principal() -> None:
    with pytest.raises(ValueError, match="tenant 'Acme Corp'"):
        client_principal("Acme Corp")
    with pytest.raises(ValueError, match="starting with a letter or digit"):
        client_principal("-leading-dash")
    assert client_principal("acme_2") == "client-acme_2"


def test_describe_renders_kafka_acls_options() -> None:
    acl = Acl("User:planner", Resource.TOPIC, "agent.decisions", Pattern.LITERAL, Operation.WRITE)
    assert acl.describe() == (
        "--add --allow-principal User:planner --operation Write --topic 'agent.decisions'"
    )
    prefixed = Acl("User:operator", Resource.GROUP, "t1.", Pattern.PREFIXED, Operation.ALL)
    assert prefixed.describe() == (
        "--add --allow-principal User:operator --operation All --group 't1.' "
        "--resource-pattern-type prefixed"
    )
