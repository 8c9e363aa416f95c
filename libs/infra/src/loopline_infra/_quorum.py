"""Which node is the active controller of a KRaft cluster, asked of any broker.

aiokafka has no DescribeQuorum (API 45 of Kafka's protocol is there, 55 is not); its protocol
classes make the request a few lines, where the alternative is a JVM start per question
(`kafka-metadata-quorum describe --status`). A broker forwards the request to the controllers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)
from loopline_runtime import KafkaSettings

METADATA_TOPIC = "__cluster_metadata"


class DescribeQuorumResponse_v0(Response):  # type: ignore[misc]  # noqa: N801 - aiokafka's naming
    API_KEY = 55
    API_VERSION = 0
    _REPLICA = (
        ("replica_id", Int32),
        ("log_end_offset", Int64),
        ("tags", TaggedFields),
    )
    SCHEMA = Schema(
        ("error_code", Int16),
        (
            "topics",
            CompactArray(
                ("topic_name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("error_code", Int16),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("high_watermark", Int64),
                        ("current_voters", CompactArray(*_REPLICA)),
                        ("observers", CompactArray(*_REPLICA)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeQuorumRequest_v0(RequestStruct):  # type: ignore[misc]  # noqa: N801
    FLEXIBLE_VERSION: ClassVar[bool] = True
    API_KEY = 55
    API_VERSION = 0
    RESPONSE_TYPE = DescribeQuorumResponse_v0
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(
                ("topic_name", CompactString("utf-8")),
                ("partitions", CompactArray(("partition_index", Int32), ("tags", TaggedFields))),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeQuorumRequest(Request[DescribeQuorumRequest_v0]):  # type: ignore[misc]
    API_KEY = 55

    def build(self, request_struct_class: type[DescribeQuorumRequest_v0]) -> Any:
        return request_struct_class([(METADATA_TOPIC, [(0, {})], {})], {})


@dataclass(frozen=True)
class Quorum:
    """The metadata quorum as its leader sees it."""

    leader: int
    """Node id of the active controller."""
    voters: tuple[int, ...]
    epoch: int


class QuorumError(RuntimeError):
    """The cluster did not describe its quorum."""


async def describe_quorum(settings: KafkaSettings, timeout_ms: int = 5000) -> Quorum:
    """The active controller and the voters of the cluster `settings` reach."""
    admin = AIOKafkaAdminClient(**settings.client_options(), request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        response = (await admin._send_request(DescribeQuorumRequest())).to_object()
    finally:
        await admin.close()
    if response["error_code"]:
        raise QuorumError(f"DescribeQuorum failed with error {response['error_code']}")
    partition = response["topics"][0]["partitions"][0]
    if partition["error_code"]:
        raise QuorumError(f"DescribeQuorum failed with error {partition['error_code']}")
    return Quorum(
        leader=partition["leader_id"],
        voters=tuple(v["replica_id"] for v in partition["current_voters"]),
        epoch=partition["leader_epoch"],
    )
