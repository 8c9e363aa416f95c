"""Loopline's topics on a cluster: created as the settings ask, checked at every start,
repaired on demand (`loopline infra topics --fix`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiokafka.admin import NewTopic
from loopline_events import TopicSpec
from loopline_runtime import ConfigurationError, KafkaSettings

from loopline_bus._topic_admin import TopicAdmin, TopicAdminError, spread
from loopline_bus._topic_fit import (
    FIX_COMMAND,
    Difference,
    Found,
    Repair,
    TopicsUnfitError,
    Wanted,
    compare,
    durability,
    summarise,
)

log = logging.getLogger("loopline.bus")

Say = Callable[[str], None]
REASSIGN_TIMEOUT_S = 300.0
LEADERS_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicsReport:
    """Loopline's topics on a cluster: what is wanted of each, what was found, how they differ."""

    brokers: list[int]
    """The live brokers."""
    wanted: list[Wanted]
    found: dict[str, Found]
    differences: list[Difference] = field(default_factory=list)

    @property
    def missing(self) -> list[Wanted]:
        return [w for w in self.wanted if w.topic not in self.found]

    @property
    def risky(self) -> list[Difference]:
        return [d for d in self.differences if d.risky]


async def inspect_topics(
    settings: KafkaSettings, specs: Mapping[str, TopicSpec], admin: TopicAdmin
) -> TopicsReport:
    """`specs` (by their name on the cluster) as wanted by `settings` and as found."""
    brokers = await admin.brokers()
    found = await admin.describe(list(specs))
    default = await admin.default_replication()
    if default is None:
        # A principal that may not read the brokers' configuration (a tenant's client) checks
        # its topics against the settings, or as they are.
        default = min((f.replication for f in found.values()), default=1)
    wanted = [
        Wanted(name, s, durability(s.kind, settings, default))
        for name, s in specs.items()
        if name not in admin.hidden
    ]
    differences = [d for w in wanted if w.topic in found for d in compare(w, found[w.topic])]
    return TopicsReport(brokers, wanted, found, differences)


async def ensure_topics(settings: KafkaSettings, specs: Mapping[str, TopicSpec]) -> None:
    """Create the topics that do not exist, with the replication and min.insync.replicas the
    settings ask; check those that do. Raises TopicsUnfitError (a ConfigurationError) when one
    puts data at risk; logs the harmless differences."""
    async with TopicAdmin(settings) as admin:
        report = await inspect_topics(settings, specs, admin)
        await _create(admin, report.missing, report.brokers, settings.principal)
        if report.risky:
            raise TopicsUnfitError(report.risky, settings)
        for line in summarise(report.differences):
            log.warning("topics %s", line)


async def _create(
    admin: TopicAdmin, missing: list[Wanted], brokers: list[int], principal: str
) -> None:
    if not missing:
        return
    short = [w for w in missing if w.durability.replication > len(brokers)]
    if short:
        w = short[0]
        raise ConfigurationError(
            f"cannot create {w.topic} with {w.durability.replication} copies "
            f"({w.durability.replication_source}): the cluster has {len(brokers)} live "
            f"broker(s) ({', '.join(map(str, brokers))})"
        )
    try:
        await admin.create(
            [
                NewTopic(
                    w.topic, w.spec.partitions, w.durability.replication, topic_configs=w.configs()
                )
                for w in missing
            ]
        )
    except TopicAdminError as exc:
        if "uthoriz" in str(exc):
            names = ", ".join(w.topic for w in missing[:3]) + (", …" if len(missing) > 3 else "")
            raise ConfigurationError(
                f"{len(missing)} topic(s) are missing ({names}) and {principal} may not create "
                f"them: create them as an administrator of the namespace ({FIX_COMMAND})"
            ) from None
        raise ConfigurationError(str(exc)) from None
    log.info("created %d topic(s)", len(missing))
    await _wait_for_leaders(admin, [w.topic for w in missing])


async def _wait_for_leaders(admin: TopicAdmin, topics: list[str]) -> None:
    """Wait until every partition of new topics has a leader, so clients can use them at once."""
    async with asyncio.timeout(LEADERS_TIMEOUT_S):
        while True:
            assignment = await admin.assignment(topics)
            led = len(assignment) == len(topics) and all(assignment.values())
            if led and await admin.in_sync(topics):
                return
            await asyncio.sleep(0.05)


async def repair_topics(
    settings: KafkaSettings,
    specs: Mapping[str, TopicSpec],
    *,
    grow_partitions: bool = False,
    say: Say = print,
    timeout_s: float = REASSIGN_TIMEOUT_S,
) -> TopicsReport:
    """Make the topics what Loopline needs: create the missing ones, move partitions onto
    more brokers (reassignment) where they have too few copies, then set their configuration
    (min.insync.replicas last, once the copies exist), and grow partition counts only when
    asked. Returns the topics as they are afterwards."""
    async with TopicAdmin(settings) as admin:
        report = await inspect_topics(settings, specs, admin)
        if report.missing:
            say(f"creating {len(report.missing)} topic(s)")
            await _create(admin, report.missing, report.brokers, settings.principal)
        await _reassign(admin, report, say, timeout_s)
        configs: dict[str, dict[str, str]] = {}
        wanted = {w.topic: w for w in report.wanted}
        for d in report.differences:
            if d.repair is Repair.CONFIGURE:
                configs.setdefault(d.topic, {})[d.setting] = wanted[d.topic].configs()[d.setting]
        if configs:
            count = sum(map(len, configs.values()))
            say(f"setting {count} configuration(s) of {len(configs)} topic(s)")
            await admin.set_configs(configs)
        grow = {d.topic: int(d.wanted) for d in report.differences if d.repair is Repair.GROW}
        if grow and grow_partitions:
            say(f"growing {len(grow)} topic(s) to their declared partitions")
            await admin.grow(grow)
        return await inspect_topics(settings, specs, admin)


async def _reassign(admin: TopicAdmin, report: TopicsReport, say: Say, timeout_s: float) -> None:
    short = {d.topic: int(d.wanted) for d in report.differences if d.repair is Repair.REASSIGN}
    if not short:
        return
    for topic, replication in short.items():
        if replication > len(report.brokers):
            raise ConfigurationError(
                f"cannot give {topic} {replication} copies: the cluster has "
                f"{len(report.brokers)} live broker(s) ({', '.join(map(str, report.brokers))})"
            )
    moves = spread(await admin.assignment(sorted(short)), report.brokers, short)
    partitions = sum(map(len, moves.values()))
    say(f"reassigning {partitions} partition(s) of {len(moves)} topic(s) onto more brokers")
    await admin.reassign(moves)
    try:
        await admin.wait_reassigned(moves, timeout_s)
    except TimeoutError:
        raise TopicAdminError(
            f"the reassignment is still copying after {timeout_s:.0f} s; it goes on in the "
            f"cluster: run `loopline infra topics` later to see it done"
        ) from None
    say("reassigned: every partition has its copies, in sync")
