"""Who may do what on Kafka: one principal per service and client role, least privilege each.

Pure: the table of each principal's topics (read, written) and consumer groups, turned into
the ACL bindings of one namespace (its topic prefix). Topics are named literally, never by a
prefix of their own name: `agent.decisions` as a prefix would also cover
`agent.decisions.dlq`. docs/decisions/0022 gives the table and the reasons for each row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from loopline_events import (
    CONTEXTS,
    CONTROL,
    DECISIONS,
    GOALS,
    LOOP_TOPICS,
    OBSERVATIONS,
    OPERATIONS,
    RESULTS,
    RETRY_TOPICS,
    STREAM,
    dlq_name,
)

ADMIN = "admin"
"""The cluster's super user: the brokers' own user, and the one that manages users and ACLs."""
OPERATOR = "operator"
"""The local CLI and SDK: administrator of a namespace (its topics and groups), no more."""
SERVICE_PRINCIPALS: tuple[str, ...] = ("memory", "planner", "tool-executor", "recovery", "gateway")
"""The principals of the processes `loopline services up` runs."""
CLIENT_PREFIX = "client-"
DEFAULT_TENANT = "default"
CLUSTER = "kafka-cluster"
"""The one name of Kafka's cluster resource."""
NAMESPACE_TOPICS = "agent."
"""Every topic Loopline declares starts so (after the namespace prefix)."""
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Resource(IntEnum):
    """Kafka's resource types (the protocol's numbers)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Pattern(IntEnum):
    """How an ACL's resource name matches (the protocol's numbers)."""

    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """Kafka's ACL operations (the protocol's numbers)."""

    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding: `principal` may do `operation` on the resource, from any host."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def describe(self) -> str:
        """The binding as `kafka-acls.sh` options (an operator's cluster takes them as they
        are)."""
        kind = {Resource.TOPIC: "--topic", Resource.GROUP: "--group", Resource.CLUSTER: "--cluster"}
        target = kind[self.resource] + (
            "" if self.resource is Resource.CLUSTER else f" '{self.name}'"
        )
        pattern = " --resource-pattern-type prefixed" if self.pattern is Pattern.PREFIXED else ""
        operation = self.operation.name.title().replace("_", "")
        return f"--add --allow-principal {self.principal} --operation {operation} {target}{pattern}"


@dataclass(frozen=True)
class Grant:
    """What one principal does with a namespace's topics and groups (logical names)."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    """Consumer groups it joins (or commits for), by name."""
    group_prefixes: tuple[str, ...] = ()
    """Consumer groups it joins, by prefix."""
    describes: bool = True
    """Whether it checks every topic of the namespace at start (DESCRIBE and
    DESCRIBE_CONFIGS on them, and on the cluster for its default replication)."""


def _dlqs(*topics: str) -> tuple[str, ...]:
    return tuple(dlq_name(t) for t in topics)


RING = (GOALS.name, CONTROL.name, CONTEXTS.name, DECISIONS.name, OBSERVATIONS.name)
"""The topics a dead letter can come back to (retried, redriven) or the watchdog re-drives."""

_LOOP = tuple(t.name for t in LOOP_TOPICS)
_RETRIES = tuple(t.name for t in RETRY_TOPICS)

GRANTS: dict[str, Grant] = {
    # Folds goals, control, decisions and observations; reads its outputs back to heal a run;
    # answers memory tools on observations; re-publishes records from foreign clients on the
    # topic they came by (goals, control: the only ones clients may write).
    "memory": Grant(
        reads=(
            GOALS.name,
            CONTROL.name,
            DECISIONS.name,
            OBSERVATIONS.name,
            CONTEXTS.name,
            RESULTS.name,
        ),
        writes=(
            *(CONTEXTS.name, RESULTS.name, OBSERVATIONS.name, GOALS.name, CONTROL.name),
            DECISIONS.name,  # a held call a person approved, for the executor (0028)
            *_dlqs(GOALS.name, CONTROL.name, DECISIONS.name, OBSERVATIONS.name),
        ),
        groups=("memory",),
    ),
    # Reads contexts (and a run's past contexts from the log), decides; streams the model's
    # text as it comes; fails a run over its tenant's quota (FailRun on control).
    "planner": Grant(
        reads=(CONTEXTS.name,),
        writes=(DECISIONS.name, STREAM.name, CONTROL.name, *_dlqs(CONTEXTS.name)),
        groups=("planner",),
    ),
    "tool-executor": Grant(
        reads=(DECISIONS.name,),
        writes=(OBSERVATIONS.name, *_dlqs(DECISIONS.name)),
        groups=("tool-executor",),
    ),
    # Judges every dead letter, waits out retries, follows every run (the watchdog), carries
    # out redrives: writes back to the ring, the retry tiers and control (FailRun).
    "recovery": Grant(
        reads=(*_LOOP, *_dlqs(*_LOOP), *_RETRIES, OPERATIONS.name),
        writes=(*RING, *_RETRIES, *_dlqs(OPERATIONS.name)),
        group_prefixes=("recovery",),
    ),
    # Publishes its users' goals and commands, and operators' redrives; follows runs' events
    # by partition (no group); replays a run from its whole log (state at a step, re-run,
    # fork), goals and control included.
    "gateway": Grant(
        reads=_LOOP,
        writes=(GOALS.name, CONTROL.name, OPERATIONS.name),
    ),
}

CLIENT_READS: tuple[str, ...] = (
    CONTEXTS.name,
    DECISIONS.name,
    OBSERVATIONS.name,
    RESULTS.name,
    STREAM.name,
)
"""What a tenant's client reads: its runs' steps and text as the SDK streams them, how they ended
(by partition, with no group: the topics are shared, and reading is not where tenants are
kept apart; the gateway serves each tenant its own runs)."""
CLIENT_WRITES: tuple[str, ...] = (GOALS.name, CONTROL.name)


def client_principal(tenant: str) -> str:
    """The principal of a tenant's clients: `client-<tenant>`."""
    check_tenant(tenant)
    return f"{CLIENT_PREFIX}{tenant}"


def check_tenant(tenant: str) -> None:
    """A tenant name fit for a user name, a role and a group name; ValueError otherwise."""
    if not TENANT_PATTERN.match(tenant):
        raise ValueError(
            f"tenant {tenant!r}: 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a "
            "letter or digit"
        )


def client_grant(tenant: str) -> Grant:
    """A tenant's client: writes goals and its commands, reads runs' steps and results."""
    return Grant(
        reads=CLIENT_READS,
        writes=CLIENT_WRITES,
        group_prefixes=(f"{client_principal(tenant)}.",),
        describes=False,
    )


def namespace_acls(namespace: str, tenants: tuple[str, ...] = (DEFAULT_TENANT,)) -> list[Acl]:
    """Every ACL binding of a namespace (topic prefix `namespace`): the services', the
    operator's, and each tenant's client's."""
    acls = [acl for name, grant in GRANTS.items() for acl in _bindings(name, grant, namespace)]
    acls += operator_acls(namespace)
    for tenant in tenants:
        acls += _bindings(client_principal(tenant), client_grant(tenant), namespace)
    return sorted(set(acls))


def own_acls(acls: list[Acl]) -> list[Acl]:
    """The bindings of `acls` that belong to their namespace alone: what dropping it revokes.
    A binding on the cluster resource (a principal's DESCRIBE_CONFIGS of the cluster) is the
    same in every namespace, so another namespace still in use holds it too: granted with each,
    revoked with none."""
    return [acl for acl in acls if acl.resource is not Resource.CLUSTER]


def tenant_acls(namespace: str, tenant: str) -> list[Acl]:
    """The ACL bindings of one tenant's client in a namespace."""
    return sorted(set(_bindings(client_principal(tenant), client_grant(tenant), namespace)))


def operator_acls(namespace: str) -> list[Acl]:
    """The operator administers the namespace: every operation on its topics (create,
    configure, delete, read, write: redrives and repairs) and its groups."""
    who = f"User:{OPERATOR}"
    # Kafka takes no empty prefix: the whole cluster's groups for the unprefixed namespace.
    groups = (
        Acl(who, Resource.GROUP, namespace, Pattern.PREFIXED, Operation.ALL)
        if namespace
        else Acl(who, Resource.GROUP, "*", Pattern.LITERAL, Operation.ALL)
    )
    return [
        Acl(who, Resource.TOPIC, namespace + NAMESPACE_TOPICS, Pattern.PREFIXED, Operation.ALL),
        groups,
        Acl(who, Resource.CLUSTER, CLUSTER, Pattern.LITERAL, Operation.DESCRIBE_CONFIGS),
    ]


def _bindings(principal: str, grant: Grant, namespace: str) -> list[Acl]:
    who = f"User:{principal}"
    topic, group = Resource.TOPIC, Resource.GROUP
    acls = [Acl(who, topic, namespace + t, Pattern.LITERAL, Operation.READ) for t in grant.reads]
    acls += [Acl(who, topic, namespace + t, Pattern.LITERAL, Operation.WRITE) for t in grant.writes]
    acls += [Acl(who, group, namespace + g, Pattern.LITERAL, Operation.READ) for g in grant.groups]
    acls += [
        Acl(who, group, namespace + g, Pattern.PREFIXED, Operation.READ)
        for g in grant.group_prefixes
    ]
    if grant.describes:
        everything = namespace + NAMESPACE_TOPICS
        acls += [
            Acl(who, topic, everything, Pattern.PREFIXED, Operation.DESCRIBE),
            Acl(who, topic, everything, Pattern.PREFIXED, Operation.DESCRIBE_CONFIGS),
            Acl(who, Resource.CLUSTER, CLUSTER, Pattern.LITERAL, Operation.DESCRIBE_CONFIGS),
        ]
    else:
        # Enough to check the topics it uses at start (their configurations).
        acls += [
            Acl(who, topic, namespace + t, Pattern.LITERAL, Operation.DESCRIBE_CONFIGS)
            for t in (*grant.reads, *grant.writes)
        ]
    return acls


IMPLIED: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset({Operation.READ, Operation.WRITE}),
}
"""Operations an ALLOW of another grants too: READ or WRITE lets a client DESCRIBE (Kafka's
rule)."""


def permits(
    acls: list[Acl], principal: str, resource: Resource, name: str, operation: Operation
) -> bool:
    """Whether `acls` let `principal` (`User:<name>`) do `operation` on a resource, matched as
    Kafka's StandardAuthorizer matches ALLOW bindings (literal, `*`, prefixed; ALL covers every
    operation). Pure: what the tests check the table with."""
    granting = {operation, Operation.ALL} | IMPLIED.get(operation, frozenset())
    for acl in acls:
        if acl.principal != principal or acl.resource is not resource:
            continue
        if acl.operation not in granting:
            continue
        if acl.pattern is Pattern.PREFIXED:
            if name.startswith(acl.name):
                return True
        elif acl.name in (name, "*"):
            return True
    return False
