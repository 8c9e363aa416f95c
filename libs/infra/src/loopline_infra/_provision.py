"""Giving a namespace its users, ACLs and topics on a cluster, as its super user.

`loopline infra up` provisions the default namespace; `loopline services up` the namespace it
starts the services in; the test harness each test's; `loopline tenants create` a tenant's
client in the current one. Topics are created here, by the admin: the services only check
them (they may describe topics, not create them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from loopline_bus import ensure_topics
from loopline_events import ALL_TOPICS, TopicSpec
from loopline_runtime import Credentials, KafkaSettings, local_credentials

from loopline_infra._acls import (
    ADMIN,
    CLIENT_PREFIX,
    OPERATOR,
    namespace_acls,
    own_acls,
    tenant_acls,
)
from loopline_infra._kafka_access import KafkaAccess, wait_login


def tenants_of(credentials: Credentials) -> tuple[str, ...]:
    """The tenants whose clients have credentials."""
    return tuple(
        sorted(
            n.removeprefix(CLIENT_PREFIX)
            for n in credentials.principals
            if n.startswith(CLIENT_PREFIX)
        )
    )


def admin_settings(credentials: Credentials, bootstrap: str | None = None) -> KafkaSettings:
    """Kafka settings of the cluster's super user."""
    return principal_settings(credentials, ADMIN, bootstrap)


def principal_settings(
    credentials: Credentials, principal: str, bootstrap: str | None = None, namespace: str = ""
) -> KafkaSettings:
    """Kafka settings that log in as `principal` (in `namespace`)."""
    login = credentials.principal(principal).kafka
    return KafkaSettings(
        bootstrap=bootstrap or credentials.endpoints.kafka_bootstrap,
        topic_prefix=namespace,
        security_protocol=credentials.endpoints.kafka_security_protocol,  # type: ignore[arg-type]
        sasl_mechanism=credentials.endpoints.kafka_sasl_mechanism,  # type: ignore[arg-type]
        username=login.username,
        password=login.password,
    )


async def provision_users(credentials: Credentials) -> None:
    """Every principal of the file a SCRAM user with its password; returns once the
    operator can log in on every broker."""
    users = {
        p.kafka.username: p.kafka.password.get_secret_value()
        for p in credentials.principals.values()
    }
    async with KafkaAccess(admin_settings(credentials)) as access:
        await access.set_passwords(users)
    await wait_login(principal_settings(credentials, OPERATOR))


async def grant_namespace(
    credentials: Credentials, namespace: str, tenants: Sequence[str] | None = None
) -> None:
    """The ACLs of every principal in `namespace` (and of each tenant's client), applied on
    every broker when this returns."""
    acls = namespace_acls(namespace, tuple(tenants_of(credentials) if tenants is None else tenants))
    async with KafkaAccess(admin_settings(credentials)) as access:
        await access.create_acls(acls)
        await access.wait_applied(acls)


async def revoke_namespace(
    credentials: Credentials, namespace: str, tenants: Sequence[str] | None = None
) -> None:
    """Remove the ACLs `grant_namespace` gave that are the namespace's alone (a dropped
    namespace's); returns once no broker enforces them."""
    acls = own_acls(
        namespace_acls(namespace, tuple(tenants_of(credentials) if tenants is None else tenants))
    )
    async with KafkaAccess(admin_settings(credentials)) as access:
        await access.delete_acls(acls)
        await access.wait_applied(acls, present=False)


async def grant_tenant(credentials: Credentials, namespace: str, tenant: str) -> None:
    """A tenant's client: its user and its ACLs in `namespace`."""
    login = credentials.principal(f"{CLIENT_PREFIX}{tenant}").kafka
    acls = tenant_acls(namespace, tenant)
    async with KafkaAccess(admin_settings(credentials)) as access:
        await access.set_passwords({login.username: login.password.get_secret_value()})
        await access.create_acls(acls)
        await access.wait_applied(acls)
    await wait_login(principal_settings(credentials, login.username))


def as_admin(credentials: Credentials, settings: KafkaSettings) -> KafkaSettings:
    """`settings` (their namespace, replication, ...) logged in as the super user."""
    admin = admin_settings(credentials, settings.bootstrap)
    return settings.model_copy(
        update={
            name: getattr(admin, name)
            for name in ("security_protocol", "sasl_mechanism", "username", "password")
        }
    )


async def create_topics(
    credentials: Credentials, settings: KafkaSettings, specs: Sequence[TopicSpec] = ALL_TOPICS
) -> None:
    """Create (or check) the topics of `settings`' namespace, with the replication they ask,
    as the super user."""
    namespace = settings.topic_prefix
    await ensure_topics(as_admin(credentials, settings), {f"{namespace}{s.name}": s for s in specs})


async def provision_namespace(
    credentials: Credentials, settings: KafkaSettings, specs: Sequence[TopicSpec] = ALL_TOPICS
) -> None:
    """`settings`' namespace ready for the services: its ACLs and its topics."""
    await asyncio.gather(
        grant_namespace(credentials, settings.topic_prefix),
        create_topics(credentials, settings, specs),
    )


def local_admin(settings: KafkaSettings) -> KafkaSettings | None:
    """`settings` as this machine's cluster's super user, when they reach the cluster whose
    credentials file is here and name no user of their own but the local operator's."""
    credentials = local_credentials()
    if credentials is None or ADMIN not in credentials.principals:
        return None
    if settings.bootstrap != credentials.endpoints.kafka_bootstrap:
        return None
    if settings.username not in (None, OPERATOR):
        return None
    return as_admin(credentials, settings)
