"""The Kafka admin requests Loopline's topics need.

aiokafka's admin client describes topics and configurations, creates topics and partitions;
it has the protocol classes of partition reassignment but no method for them, and no
IncrementalAlterConfigs (its AlterConfigs replaces a topic's whole configuration, dropping
what an operator set beside ours). Both are a few lines on its protocol classes, in the same
process and connection, where the alternative was a JVM per request
(`kafka-reassign-partitions`, whose tool jar the broker does not even need).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code
from aiokafka.protocol.admin import (
    AlterPartitionReassignmentsRequest,
    ListPartitionReassignmentsRequest,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String
from loopline_runtime import KafkaSettings

from loopline_bus._topic_fit import CHECKED_CONFIGS, Found

SET = 0
"""IncrementalAlterConfigs' operation that sets a value."""
TOPIC_ALREADY_EXISTS = 36
TOPIC_AUTHORIZATION_FAILED = 29
REQUEST_TIMEOUT_MS = 30_000
CONFIG_TIMEOUT_S = 30.0


class IncrementalAlterConfigsResponse_v0(Response):  # type: ignore[misc]  # noqa: N801
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class IncrementalAlterConfigsRequest_v0(RequestStruct):  # type: ignore[misc]  # noqa: N801
    FLEXIBLE_VERSION: ClassVar[bool] = False
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


class IncrementalAlterConfigsRequest(Request[IncrementalAlterConfigsRequest_v0]):  # type: ignore[misc]
    API_KEY = 44

    def __init__(self, topics: Mapping[str, Mapping[str, str]]):
        self._resources = [
            (int(ConfigResourceType.TOPIC), topic, [(k, SET, v) for k, v in configs.items()])
            for topic, configs in topics.items()
        ]

    def build(self, request_struct_class: type[IncrementalAlterConfigsRequest_v0]) -> Any:
        return request_struct_class(self._resources, False)


async def broker_ids(admin: AIOKafkaAdminClient) -> list[int]:
    """Node ids of the brokers the cluster's metadata lists (the live, unfenced ones), from a
    metadata request naming no topic: `describe_cluster` asks for every topic's partitions,
    which on a shared cluster is most of the answer, decoded for nothing."""
    metadata = await admin._get_cluster_metadata(topics=[])
    return sorted(b["node_id"] for b in metadata.to_object()["brokers"])


class TopicAdminError(RuntimeError):
    """The cluster refused an admin request; the message says which and why."""


class TopicAdmin:
    """An admin connection for Loopline's topics: `async with TopicAdmin(settings) as admin`."""

    def __init__(self, settings: KafkaSettings, timeout_ms: int = REQUEST_TIMEOUT_MS):
        self._admin = AIOKafkaAdminClient(
            **settings.client_options(), request_timeout_ms=timeout_ms
        )
        self._timeout_ms = timeout_ms
        self.hidden: set[str] = set()
        """Topics this principal may not describe (or not see the configuration of): a
        client's ACLs cover its own topics only, and it checks those alone."""

    async def __aenter__(self) -> Self:
        await self._admin.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._admin.close()

    async def brokers(self) -> list[int]:
        """Node ids of the brokers the cluster's metadata lists (the live, unfenced ones)."""
        return await broker_ids(self._admin)

    async def default_replication(self) -> int | None:
        """The cluster's default.replication.factor, as a broker reports it (None when this
        principal may not read the brokers' configuration)."""
        broker = (await self.brokers())[0]
        response = await self._admin.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.BROKER, str(broker), {"default.replication.factor": None}
                )
            ]
        )
        resource = response[0].to_object()["resources"][0]
        if resource["error_code"] or not resource["config_entries"]:
            return None
        return int(resource["config_entries"][0]["config_value"])

    async def existing(self) -> set[str]:
        return set(await self._admin.list_topics())

    async def describe(self, topics: Sequence[str]) -> dict[str, Found]:
        """Partitions, replication and the checked configurations of each topic that exists."""
        if not topics:
            return {}
        metadata = {t["topic"]: t for t in await self._admin.describe_topics(list(topics))}
        self.hidden |= {
            t for t, m in metadata.items() if m["error_code"] == TOPIC_AUTHORIZATION_FAILED
        }
        present = [t for t in topics if t in metadata and not metadata[t]["error_code"]]
        if not present:
            return {}
        configs = await self.configs(dict.fromkeys(present, CHECKED_CONFIGS))
        present = [t for t in present if t not in self.hidden]
        return {
            t: Found(
                topic=t,
                partitions=len(metadata[t]["partitions"]),
                replication=min(len(p["replicas"]) for p in metadata[t]["partitions"]),
                configs=configs.get(t, {}),
                under_replicated=sum(
                    not set(p["isr"]) >= set(p["replicas"]) for p in metadata[t]["partitions"]
                ),
            )
            for t in present
        }

    async def assignment(self, topics: Sequence[str]) -> dict[str, dict[int, list[int]]]:
        """The replicas (leader's preference first) of every partition of `topics`."""
        described = await self._admin.describe_topics(list(topics))
        return {
            t["topic"]: {p["partition"]: list(p["replicas"]) for p in t["partitions"]}
            for t in described
            if not t["error_code"]
        }

    async def in_sync(self, topics: Sequence[str] | None = None) -> bool:
        """Whether every partition of `topics` (all topics: None) has all its replicas in sync."""
        described = await self._admin.describe_topics(list(topics) if topics else None)
        return all(
            set(p["isr"]) >= set(p["replicas"]) and p["leader"] >= 0
            for t in described
            if not t["error_code"]
            for p in t["partitions"]
        )

    async def create(self, topics: Sequence[NewTopic]) -> None:
        """Create topics (those created meanwhile by another process are fine)."""
        response = await self._admin.create_topics(list(topics))
        errors = [
            f"{topic}: {message or for_code(code).__name__}"
            for topic, code, message, *_ in response.topic_errors
            if code and code != TOPIC_ALREADY_EXISTS
        ]
        if errors:
            raise TopicAdminError("the cluster refused to create topics:\n  " + "\n  ".join(errors))

    async def set_configs(self, topics: Mapping[str, Mapping[str, str]]) -> None:
        """Set these configurations of these topics, leaving their others as they are."""
        if not topics:
            return
        response = await self._admin._send_request(IncrementalAlterConfigsRequest(topics))
        errors = [
            f"{r['resource_name']}: {r['error_message'] or for_code(r['error_code']).__name__}"
            for r in response.to_object()["responses"]
            if r["error_code"]
        ]
        if errors:
            raise TopicAdminError("the cluster refused configurations:\n  " + "\n  ".join(errors))
        await self._wait_configs(topics)

    async def _wait_configs(self, topics: Mapping[str, Mapping[str, str]]) -> None:
        """Wait until the brokers answer with the new values: a change reaches them through the
        metadata log, a moment after the controller accepted it."""
        async with asyncio.timeout(CONFIG_TIMEOUT_S):
            while True:
                current = await self.configs({t: list(c) for t, c in topics.items()})
                if all(
                    current.get(t, {}).get(k) == v for t, c in topics.items() for k, v in c.items()
                ):
                    return
                await asyncio.sleep(0.1)

    async def configs(self, names: Mapping[str, Sequence[str]]) -> dict[str, dict[str, str]]:
        """The values in force of these configurations of these topics."""
        responses = await self._admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, t, dict.fromkeys(keys))
                for t, keys in names.items()
            ]
        )
        found: dict[str, dict[str, str]] = {}
        for response in responses:
            for resource in response.to_object()["resources"]:
                if resource["error_code"] == TOPIC_AUTHORIZATION_FAILED:
                    self.hidden.add(resource["resource_name"])
                    continue
                found[resource["resource_name"]] = {
                    e["config_names"]: e["config_value"] for e in resource["config_entries"]
                }
        return found

    async def grow(self, topics: Mapping[str, int]) -> None:
        """Give topics more partitions (Kafka cannot take any away); return once the brokers
        show them."""
        if not topics:
            return
        await self._admin.create_partitions(
            {t: NewPartitions(total_count=n) for t, n in topics.items()}
        )
        async with asyncio.timeout(CONFIG_TIMEOUT_S):
            while True:
                current = await self.assignment(list(topics))
                if all(len(current.get(t, {})) >= n for t, n in topics.items()):
                    return
                await asyncio.sleep(0.1)

    async def reassign(self, moves: Mapping[str, Mapping[int, Sequence[int]]]) -> None:
        """Ask the controller to move partitions onto these replicas (it copies in the
        background: `wait_reassigned` waits for it)."""
        request = AlterPartitionReassignmentsRequest(
            self._timeout_ms,
            [
                (topic, [(p, list(replicas), {}) for p, replicas in sorted(parts.items())], {})
                for topic, parts in moves.items()
            ],
            {},
        )
        response = (await self._admin._send_to_controller(request)).to_object()
        errors = [
            f"{r['name']}[{p['partition_index']}]: {p['error_message'] or p['error_code']}"
            for r in response["responses"]
            for p in r["partitions"]
            if p["error_code"]
        ]
        if response["error_code"]:
            errors.insert(0, response["error_message"] or str(response["error_code"]))
        if errors:
            raise TopicAdminError("the cluster refused the reassignment:\n  " + "\n  ".join(errors))

    async def reassigning(self) -> dict[str, list[int]]:
        """Partitions being reassigned now, by topic."""
        request = ListPartitionReassignmentsRequest(self._timeout_ms, None, {})
        response = (await self._admin._send_to_controller(request)).to_object()
        if response["error_code"]:
            raise TopicAdminError(f"listing reassignments failed: {response['error_message']}")
        return {
            t["name"]: [p["partition_index"] for p in t["partitions"]] for t in response["topics"]
        }

    async def wait_reassigned(
        self, moves: Mapping[str, Mapping[int, Sequence[int]]], timeout_s: float
    ) -> None:
        """Wait until the partitions of `moves` have their new replicas, all in sync, and the
        controller moves none of them any more."""
        names = sorted(moves)
        async with asyncio.timeout(timeout_s):
            while True:
                moving = set(names) & set(await self.reassigning())
                current = await self.assignment(names)
                placed = all(
                    set(current.get(t, {}).get(p, ())) == set(replicas)
                    for t, parts in moves.items()
                    for p, replicas in parts.items()
                )
                if not moving and placed and await self.in_sync(names):
                    return
                await asyncio.sleep(0.5)


def spread(
    current: Mapping[str, Mapping[int, Sequence[int]]],
    brokers: Sequence[int],
    replication: Mapping[str, int],
) -> dict[str, dict[int, list[int]]]:
    """New replicas for the partitions with fewer copies than their topic's `replication`:
    their current ones first (the leader stays where it is), then the brokers holding the
    fewest replicas so far."""
    load = Counter(dict.fromkeys(brokers, 0))
    for parts in current.values():
        for replicas in parts.values():
            load.update(r for r in replicas if r in load)
    moves: dict[str, dict[int, list[int]]] = {}
    for topic, parts in sorted(current.items()):
        wanted = replication.get(topic, 0)
        for partition, replicas in sorted(parts.items()):
            if len(replicas) >= wanted:
                continue
            target = list(replicas)
            while len(target) < wanted:
                choice = min((b for b in brokers if b not in target), key=lambda b: (load[b], b))
                target.append(choice)
                load[choice] += 1
            moves.setdefault(topic, {})[partition] = target
    return moves
