"""Kafka lets in only those it knows, and each only where its ACLs say (docs/decisions/0022).

Against the session's real broker (SASL/SCRAM, StandardAuthorizer, nothing allowed that an
ACL does not allow), in the test's namespace with every principal's ACLs: a client with no
or wrong credentials is refused; a tenant's client and each service write only their own
topics and join only their own consumer groups.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from loopline_bus import KafkaBus
from loopline_events import CONTEXTS, CONTROL, DECISIONS, GOALS, OBSERVATIONS, RESULTS
from loopline_infra import (
    CredentialStore,
    KafkaAccess,
    admin_settings,
    grant_namespace,
    namespace_acls,
    principal_settings,
    revoke_namespace,
)
from loopline_runtime import KafkaSettings
from loopline_testing import unique_prefix
from pydantic import SecretStr

CLIENT = "client-default"


@pytest.fixture
def store(loopline_access: CredentialStore | None) -> CredentialStore:
    assert loopline_access is not None, "these tests need the project's own servers"
    return loopline_access


def as_principal(store: CredentialStore, principal: str, namespace: str) -> KafkaSettings:
    """Settings that log in as `principal`, in `namespace`."""
    return principal_settings(store.require(), principal, namespace=namespace)


@pytest.fixture
def topics(kafka_bus: KafkaBus) -> str:
    """The namespace, its topics made (by the operator)."""
    return kafka_bus.settings.topic_prefix


async def produce(settings: KafkaSettings, topic: str) -> None:
    """One record to `topic` of the settings' namespace, acknowledged by every replica."""
    producer = AIOKafkaProducer(**settings.client_options(), acks="all", request_timeout_ms=10_000)
    try:
        await producer.start()
        await producer.send_and_wait(settings.topic_prefix + topic, b"{}", key=b"run-1")
    finally:
        await producer.stop()


async def test_a_client_without_credentials_is_not_let_in(
    store: CredentialStore, topics: str
) -> None:
    anonymous = KafkaSettings(bootstrap=store.require().endpoints.kafka_bootstrap)
    assert anonymous.security_protocol == "PLAINTEXT"
    with pytest.raises(KafkaConnectionError):
        await produce(anonymous.model_copy(update={"topic_prefix": topics}), GOALS.name)

    impostor = as_principal(store, CLIENT, topics).model_copy(
        update={"password": SecretStr("not-the-password")}
    )
    with pytest.raises(KafkaConnectionError):
        await produce(impostor, GOALS.name)

    await produce(as_principal(store, CLIENT, topics), GOALS.name)  # the right password is


@pytest.mark.parametrize("topic", [RESULTS.name, OBSERVATIONS.name, DECISIONS.name, CONTEXTS.name])
async def test_a_tenants_client_may_not_write_what_the_services_write(
    store: CredentialStore, topics: str, topic: str
) -> None:
    client = as_principal(store, CLIENT, topics)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(client, topic)


async def test_a_tenants_client_writes_goals_and_control(
    store: CredentialStore, topics: str
) -> None:
    client = as_principal(store, CLIENT, topics)
    await produce(client, GOALS.name)
    await produce(client, CONTROL.name)


@pytest.mark.parametrize(
    ("principal", "topic"),
    [
        ("planner", RESULTS.name),
        ("planner", CONTEXTS.name),
        ("planner", OBSERVATIONS.name),
        ("tool-executor", DECISIONS.name),
        ("tool-executor", RESULTS.name),
        ("tool-executor", CONTEXTS.name),
        ("gateway", RESULTS.name),
        ("gateway", DECISIONS.name),
        ("gateway", OBSERVATIONS.name),
        ("recovery", RESULTS.name),
    ],
)
async def test_a_service_may_not_write_a_topic_it_does_not_own(
    store: CredentialStore, topics: str, principal: str, topic: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(as_principal(store, principal, topics), topic)


@pytest.mark.parametrize(
    ("principal", "topic"),
    [
        ("memory", RESULTS.name),
        ("memory", DECISIONS.name),
        ("memory", CONTEXTS.name),
        ("planner", DECISIONS.name),
        ("tool-executor", OBSERVATIONS.name),
    ],
)
async def test_each_topic_is_written_by_its_owner(
    store: CredentialStore, topics: str, principal: str, topic: str
) -> None:
    await produce(as_principal(store, principal, topics), topic)


@pytest.mark.parametrize(
    ("principal", "group", "topic"),
    [
        (CLIENT, "memory", RESULTS.name),
        (CLIENT, "tool-executor", RESULTS.name),
        ("planner", "memory", CONTEXTS.name),
        ("tool-executor", "planner", DECISIONS.name),
    ],
)
async def test_no_one_reads_for_another_services_group(
    store: CredentialStore, topics: str, principal: str, group: str, topic: str
) -> None:
    # What the group committed, and so where it is, is the group's alone: a stranger could
    # otherwise move it past records, which the service would then never see.
    settings = as_principal(store, principal, topics)
    consumer = AIOKafkaConsumer(
        **settings.client_options(), group_id=topics + group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await consumer.committed(TopicPartition(topics + topic, 0))
    finally:
        await consumer.stop()


async def test_dropping_a_namespace_leaves_every_other_namespace_its_acls(
    store: CredentialStore, topics: str
) -> None:
    # Bindings on the cluster resource are the same in every namespace: dropping one namespace
    # once took them from all the others in use (their services could no longer read the
    # cluster's default replication, and a namespace granted meanwhile waited for them).
    credentials = store.require()
    other = unique_prefix()
    await grant_namespace(credentials, other)
    await revoke_namespace(credentials, other)
    ours = namespace_acls(topics, ("default",))
    async with KafkaAccess(admin_settings(credentials)) as access:
        for node in await access.brokers():
            for principal in {acl.principal for acl in ours}:
                held = await access.acls_of(principal, node)
                assert {a for a in ours if a.principal == principal} <= held, (node, principal)
            gone = await access.acls_of("User:memory", node)
            assert not {a for a in gone if a.name.startswith(other)}, node
    await produce(as_principal(store, "memory", topics), RESULTS.name)


async def test_tenants_create_gives_a_tenant_a_client_of_its_own(
    store: CredentialStore, topics: str
) -> None:
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "loopline.cli", "tenants", "create", "acme", "--json"],
        env={**os.environ, "LOOPLINE_KAFKA_TOPIC_PREFIX": topics},
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    assert (shown["principal"], shown["namespace"]) == ("client-acme", topics)
    assert store.require().principal("client-acme").acts_for == ("acme",)
    acme = as_principal(store, "client-acme", topics)
    assert acme.password is not None
    assert acme.password.get_secret_value() == shown["kafka"]["password"]
    await produce(acme, GOALS.name)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(acme, RESULTS.name)


def test_kcat_logs_in_as_a_tenants_client_and_is_held_to_its_acls(
    store: CredentialStore, topics: str
) -> None:
    # librdkafka logs in with PLAIN on the loopback listener (before 2.6.1 it cannot complete
    # SCRAM with Kafka 4): the same principal, the same ACLs.
    kcat = shutil.which("kcat")
    assert kcat, "kcat is part of the test set-up (.ci/run installs it)"
    options = store.require().kcat_args(CLIENT)

    def kcat_produce(topic: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kcat, "-P", *options, "-t", topics + topic, "-k", "run-1"],
            input="{}",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert kcat_produce(GOALS.name).returncode == 0
    refused = kcat_produce(RESULTS.name)
    assert refused.returncode != 0
    assert "Topic authorization failed" in refused.stderr
