"""What the figures were measured on: the machine, the versions, and the durability in force.

Durability is read from the running pieces, not restated from the code: the producer's
settings from a started `KafkaBus`, the broker's flush policy from the broker itself, the
PostgreSQL and Redis settings from their servers.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from loopline_bus import KafkaBus
from loopline_infra import KAFKA_VERSION, Infra
from loopline_runtime import Endpoints

BROKER_SETTINGS = (
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "min.insync.replicas",
    "default.replication.factor",
    "unclean.leader.election.enable",
)
LONG_MAX = str(2**63 - 1)
PACKAGES = {
    "aiokafka": "aiokafka",
    "pydantic": "pydantic",
    "pydantic-core": "pydantic-core",
    "asyncpg": "asyncpg",
    "redis-py": "redis",
    "uvloop": "uvloop",
}
"""Client libraries whose versions count, by the name the results use."""


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and kernel of this machine, and its load when we began."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor(),
    )
    meminfo = Path("/proc/meminfo").read_text().split()
    mem_kib = int(meminfo[meminfo.index("MemTotal:") + 1])
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_commit() -> str:
    """The checkout's commit, with `+dirty` when the working tree has changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def command() -> str:
    """How this benchmark was started."""
    return shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]])


async def versions(endpoints: Endpoints) -> dict[str, str]:
    """Python, the client libraries and the servers."""
    found = {"python": platform.python_version(), "kafka": _kafka_version()}
    for name, package in PACKAGES.items():
        try:
            found[name] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    conn = await asyncpg.connect(endpoints.postgres.dsn.get_secret_value())
    try:
        found["postgresql"] = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    try:
        info = await redis.info("server")
        found["redis"] = str(info.get("redis_version", "unknown"))
    finally:
        await redis.aclose()
    return found


def _kafka_version() -> str:
    """The broker's version, from the jar `infra up` runs (the project's pinned one if absent)."""
    jars = sorted(Infra().paths.kafka_libs.glob("kafka_2.13-*.jar"))
    names = [j.name.removeprefix("kafka_2.13-").removesuffix(".jar") for j in jars]
    plain = [n for n in names if n[:1].isdigit() and "-" not in n]
    return plain[0] if plain else KAFKA_VERSION


async def durability(endpoints: Endpoints) -> dict[str, Any]:
    """Producer acks, broker flush policy, transactions, PostgreSQL and Redis persistence."""
    return {
        "producer": await _producer(endpoints),
        "broker": await _broker(endpoints),
        "transactions": "off: at-least-once delivery and idempotent handlers (decision 0005); "
        "consumers read_committed",
        "postgresql": await _postgres(endpoints),
        "redis": await _redis(endpoints),
    }


async def _producer(endpoints: Endpoints) -> dict[str, Any]:
    bus = KafkaBus(settings=endpoints.kafka, client_id="bench-probe")
    await bus.start()
    try:
        producer = bus.producer
        # aiokafka keeps these on private attributes; read them rather than restate the code.
        acks = getattr(getattr(producer, "_sender", None), "_acks", "unknown")
        txn = getattr(producer, "_txn_manager", None)
    finally:
        await bus.stop()
    return {
        "acks": "all" if acks == -1 else str(acks),
        "idempotent": txn is not None,
        "transactional": bool(txn is not None and getattr(txn, "transactional_id", None)),
        "linger_ms": endpoints.kafka.linger_ms,
    }


async def _broker(endpoints: Endpoints) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(**endpoints.kafka.client_options())
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        brokers = [b["node_id"] for b in cluster["brokers"]]
        wanted = dict.fromkeys(BROKER_SETTINGS)
        response = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(brokers[0]), wanted)]
        )
    finally:
        await admin.close()
    entries = response[0].to_object()["resources"][0]["config_entries"]
    values = {e["config_names"]: e["config_value"] for e in entries}
    flush_messages = values.get("log.flush.interval.messages")
    flush_ms = values.get("log.flush.interval.ms")
    forced = not (flush_messages in (None, LONG_MAX) and flush_ms is None)
    return {
        "brokers": len(brokers),
        **values,
        "flush_policy": (
            f"forced flush every {flush_messages} messages / {flush_ms} ms"
            if forced
            else "no forced flush: an acknowledged record is in the page cache of "
            f"{len(brokers)} broker(s); the kernel writes it to disk later"
        ),
    }


async def _postgres(endpoints: Endpoints) -> dict[str, str]:
    conn = await asyncpg.connect(endpoints.postgres.dsn.get_secret_value())
    try:
        names = ("fsync", "synchronous_commit", "wal_sync_method", "commit_delay")
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()


async def _redis(endpoints: Endpoints) -> dict[str, str]:
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    try:
        found: dict[str, str] = {}
        for name in ("appendonly", "appendfsync", "save"):
            found.update({str(k): str(v) for k, v in (await redis.config_get(name)).items()})
        return found
    finally:
        await redis.aclose()


def durability_line(d: dict[str, Any]) -> str:
    """One sentence stating the durability in force."""
    p, b, pg, r = d["producer"], d["broker"], d["postgresql"], d["redis"]
    return (
        f"producer acks={p['acks']}, idempotent={p['idempotent']}, linger {p['linger_ms']} ms; "
        f"broker: {b['brokers']} node(s), replication {b.get('default.replication.factor')}, "
        f"min.insync.replicas {b.get('min.insync.replicas')}, "
        f"{b['flush_policy']}; transactions off; PostgreSQL fsync={pg['fsync']} "
        f"synchronous_commit={pg['synchronous_commit']} "
        "(memory commits once per consumed batch, before its outputs are sent); "
        f"Redis appendonly={r.get('appendonly')} (a cache: PostgreSQL is the record)"
    )
