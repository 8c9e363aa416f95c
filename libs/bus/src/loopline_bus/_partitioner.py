"""Kafka's default partitioner, so every implementation maps a run id to the same partition."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2, positive, modulo)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
