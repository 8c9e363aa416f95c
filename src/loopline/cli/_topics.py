"""`loopline infra topics [--fix]`: Loopline's topics on the cluster, checked and repaired."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import asdict
from typing import Any

import click
from aiokafka.errors import KafkaError
from loopline_bus import (
    TopicAdmin,
    TopicAdminError,
    TopicsReport,
    inspect_topics,
    repair_topics,
    summarise,
)
from loopline_events import ALL_TOPICS, TopicSpec
from loopline_infra import local_admin
from loopline_runtime import ConfigurationError, KafkaSettings, load_endpoints

EXIT_RISKY = 1
EXIT_CANNOT = 2


def _specs(settings: KafkaSettings) -> dict[str, TopicSpec]:
    return {f"{settings.topic_prefix}{s.name}": s for s in ALL_TOPICS}


async def _inspect(settings: KafkaSettings) -> TopicsReport:
    async with TopicAdmin(settings) as admin:
        return await inspect_topics(settings, _specs(settings), admin)


@click.command()
@click.option(
    "--fix",
    is_flag=True,
    help="Repair what differs: create missing topics, move "
    "partitions onto more brokers, set their configuration.",
)
@click.option(
    "--grow-partitions",
    is_flag=True,
    help="With --fix, also grow topics that have "
    "fewer partitions than declared. A run's key then maps to another partition: "
    "do it with no run under way.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the topics as JSON.")
def topics(fix: bool, grow_partitions: bool, as_json: bool) -> None:
    """Loopline's topics on the cluster (LOOPLINE_KAFKA_BOOTSTRAP, in the namespace
    LOOPLINE_KAFKA_TOPIC_PREFIX) against what it needs: partitions, replication,
    min.insync.replicas, retention, cleanup policy, largest message.

    Replication and min.insync.replicas come from LOOPLINE_KAFKA_REPLICATION_FACTOR and
    LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS (or per topic class), else the cluster's default
    replication and one fewer in sync. Partition counts can only grow: a topic with more
    partitions than declared stays as it is.

    Exit 1 while a difference puts data at risk (the services refuse to start on it),
    2 when the cluster cannot be read or repaired.
    """
    if grow_partitions and not fix:
        raise click.UsageError("--grow-partitions goes with --fix")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        settings = load_endpoints().kafka
        if fix:
            # Moving partitions is the cluster's business: on this machine's cluster, its admin.
            settings = local_admin(settings) or settings
            report = asyncio.run(
                repair_topics(settings, _specs(settings), grow_partitions=grow_partitions, say=say)
            )
        else:
            report = asyncio.run(_inspect(settings))
    except (ConfigurationError, TopicAdminError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CANNOT)
    except (KafkaError, OSError) as exc:
        click.echo(f"error: cannot reach Kafka at {settings.bootstrap}: {exc!r}", err=True)
        sys.exit(EXIT_CANNOT)
    if as_json:
        click.echo(json.dumps(_as_json(report), indent=2))
    else:
        _print(report, fixed=fix)
    sys.exit(EXIT_RISKY if report.risky else 0)


def _as_json(report: TopicsReport) -> dict[str, Any]:
    differences: dict[str, list[dict[str, Any]]] = {}
    for d in report.differences:
        differences.setdefault(d.topic, []).append(asdict(d))
    return {
        "brokers": report.brokers,
        "risky": len(report.risky),
        "topics": [
            {
                "topic": w.topic,
                "class": w.spec.kind.value,
                "exists": w.topic in report.found,
                "wanted": {
                    "partitions": w.spec.partitions,
                    "replication": w.durability.replication,
                    **w.configs(),
                },
                "found": (
                    {
                        "partitions": report.found[w.topic].partitions,
                        "replication": report.found[w.topic].replication,
                        "under_replicated": report.found[w.topic].under_replicated,
                        **report.found[w.topic].configs,
                    }
                    if w.topic in report.found
                    else None
                ),
                "differences": differences.get(w.topic, []),
            }
            for w in report.wanted
        ],
    }


HEADER = (
    "topic",
    "class",
    "partitions",
    "replicas",
    "min ISR",
    "retention.ms",
    "out of sync",
    "state",
)


def _print(report: TopicsReport, *, fixed: bool) -> None:
    click.echo(f"brokers: {', '.join(map(str, report.brokers))}")
    rows = [HEADER, *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    click.echo("(found/wanted where they differ)")
    for line in summarise(report.risky):
        click.echo(f"RISK  {line}")
    for line in summarise([d for d in report.differences if not d.risky]):
        click.echo(f"note  {line}")
    if report.missing:
        click.echo(f"{len(report.missing)} topic(s) missing: the services create them at start.")
    behind = sum(f.under_replicated for f in report.found.values())
    if behind:
        click.echo(
            f"{behind} partition(s) have a copy out of sync: a broker is down or catching up "
            "(`loopline infra status` on a local cluster)"
        )
    if report.risky and not fixed:
        click.echo("Repair: loopline infra topics --fix (same LOOPLINE_KAFKA_* variables)")
    if not report.differences and not report.missing:
        click.echo("Every topic is as Loopline needs it.")


def _rows(report: TopicsReport) -> list[tuple[str, ...]]:
    """One row per topic: found/wanted where they differ, and its state."""
    risky = {d.topic for d in report.risky}
    noted = {d.topic for d in report.differences}
    rows: list[tuple[str, ...]] = []
    for w in report.wanted:
        f = report.found.get(w.topic)
        if f is None:
            state = "missing"
        else:
            state = "AT RISK" if w.topic in risky else "differs" if w.topic in noted else "ok"
        rows.append(
            (
                w.topic,
                w.spec.kind.value,
                _pair(f.partitions if f else None, w.spec.partitions),
                _pair(f.replication if f else None, w.durability.replication),
                _pair(f.configs.get("min.insync.replicas") if f else None, w.durability.min_insync),
                _pair(f.configs.get("retention.ms") if f else None, w.spec.retention_ms),
                str(f.under_replicated) if f else "-",
                state,
            )
        )
    return rows


def _pair(found: object, wanted: object) -> str:
    if found is None:
        return f"-/{wanted}"
    return str(found) if str(found) == str(wanted) else f"{found}/{wanted}"
