"""What Loopline needs of each topic, and how a topic found on the cluster differs from it.

Pure: the settings and the declarations give what is wanted, the cluster gives what is found
(read by _topic_admin.py); the differences say which put data at risk (the services refuse to
start on them) and which are only worth a line in the log.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from loopline_events import TopicClass, TopicSpec
from loopline_runtime import ConfigurationError, KafkaSettings

FIX_COMMAND = "loopline infra topics --fix"
CHECKED_CONFIGS = (
    "min.insync.replicas",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "max.message.bytes",
)
"""The topic configurations compared with what Loopline declares."""


@dataclass(frozen=True)
class Durability:
    """How many copies of a topic the cluster keeps, and how many a write must reach."""

    replication: int
    min_insync: int
    replication_source: str
    """Where `replication` comes from, as an operator would change it."""
    min_insync_source: str


def durability(kind: TopicClass, settings: KafkaSettings, cluster_default: int) -> Durability:
    """The replication and min.insync.replicas of topics of class `kind`: the class's setting,
    else the general one, else the cluster's default replication and one copy fewer in sync
    (at least one)."""
    _check_classes(settings)
    if kind.value in settings.replication_by_class:
        replication = settings.replication_by_class[kind.value]
        replication_source = f"LOOPLINE_KAFKA_REPLICATION_BY_CLASS[{kind.value}]={replication}"
    elif settings.replication_factor is not None:
        replication = settings.replication_factor
        replication_source = f"LOOPLINE_KAFKA_REPLICATION_FACTOR={replication}"
    else:
        replication = cluster_default
        replication_source = f"the cluster's default.replication.factor={replication}"
    if kind.value in settings.min_insync_by_class:
        min_insync = settings.min_insync_by_class[kind.value]
        min_insync_source = f"LOOPLINE_KAFKA_MIN_INSYNC_BY_CLASS[{kind.value}]={min_insync}"
    elif settings.min_insync_replicas is not None:
        min_insync = settings.min_insync_replicas
        min_insync_source = f"LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS={min_insync}"
    else:
        min_insync = max(1, replication - 1)
        min_insync_source = f"the replication factor minus one ({min_insync})"
    if replication < 1 or min_insync < 1:
        raise ConfigurationError(
            f"{kind.value} topics: replication {replication} ({replication_source}) and "
            f"min.insync.replicas {min_insync} ({min_insync_source}) must be at least 1"
        )
    if min_insync > replication:
        raise ConfigurationError(
            f"{kind.value} topics: min.insync.replicas {min_insync} ({min_insync_source}) is "
            f"more than their replication factor {replication} ({replication_source}): no "
            "write could ever be acknowledged"
        )
    return Durability(replication, min_insync, replication_source, min_insync_source)


def _check_classes(settings: KafkaSettings) -> None:
    known = {c.value for c in TopicClass}
    for variable, given in (
        ("LOOPLINE_KAFKA_REPLICATION_BY_CLASS", settings.replication_by_class),
        ("LOOPLINE_KAFKA_MIN_INSYNC_BY_CLASS", settings.min_insync_by_class),
    ):
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigurationError(
                f"{variable}: no topic class named {', '.join(map(repr, unknown))} "
                f"(the classes: {', '.join(c.value for c in TopicClass)})"
            )


@dataclass(frozen=True)
class Wanted:
    """A topic as Loopline needs it."""

    topic: str
    """Its name on the cluster (with the namespace prefix)."""
    spec: TopicSpec
    durability: Durability

    def configs(self) -> dict[str, str]:
        """Every topic configuration Loopline sets."""
        return {**self.spec.config(), "min.insync.replicas": str(self.durability.min_insync)}


@dataclass(frozen=True)
class Found:
    """A topic as the cluster has it."""

    topic: str
    partitions: int
    replication: int
    """The fewest copies any of its partitions has."""
    configs: Mapping[str, str]
    """The values in force (the topic's own, or the broker's default) of CHECKED_CONFIGS."""
    under_replicated: int = 0
    """Partitions with a copy out of sync now (a broker down or catching up): a state of the
    cluster, not of the topic's settings."""


class Repair(StrEnum):
    """What `loopline infra topics --fix` does about a difference."""

    REASSIGN = "reassign"
    """Move the partitions onto more brokers (a partition reassignment)."""
    CONFIGURE = "configure"
    """Set the topic's configuration."""
    GROW = "grow"
    """Add partitions (only with --grow-partitions)."""
    NONE = "none"
    """Nothing can or should be done."""


@dataclass(frozen=True)
class Difference:
    """One way a topic found differs from what Loopline needs."""

    topic: str
    setting: str
    found: str
    wanted: str
    source: str
    """Where the wanted value comes from."""
    risky: bool
    """Whether it puts data at risk: the services refuse to start."""
    why: str
    repair: Repair

    def line(self) -> str:
        """One line naming the topic, the setting, the value found and the value wanted."""
        return (
            f"{self.topic}: {self.setting} is {self.found}, wanted {self.wanted} "
            f"({self.source}): {self.why}"
        )


def summarise(differences: Sequence[Difference]) -> list[str]:
    """One line per kind of difference, naming every topic that has it (a namespace's fifteen
    topics usually differ alike)."""
    groups: dict[tuple[str, str, str, str, str], list[str]] = {}
    for d in differences:
        groups.setdefault((d.setting, d.found, d.wanted, d.source, d.why), []).append(d.topic)
    return [
        f"{', '.join(topics)}: {setting} is {found}, wanted {wanted} ({source}): {why}"
        for (setting, found, wanted, source, why), topics in groups.items()
    ]


def compare(wanted: Wanted, found: Found) -> list[Difference]:
    """Every difference between a topic found and what Loopline needs of it."""
    out = _replication(wanted, found)
    if found.partitions != wanted.spec.partitions:
        fewer = found.partitions < wanted.spec.partitions
        out.append(
            Difference(
                found.topic,
                "partitions",
                str(found.partitions),
                str(wanted.spec.partitions),
                "declared",
                False,
                "fewer instances of a service can share the work; growing it moves runs' keys "
                "to other partitions (--grow-partitions, with no run under way)"
                if fewer
                else "harmless; partition counts can only grow",
                Repair.GROW if fewer else Repair.NONE,
            )
        )
    for name in CHECKED_CONFIGS[1:]:
        difference = _config(wanted, found, name)
        if difference is not None:
            out.append(difference)
    return out


def _replication(wanted: Wanted, found: Found) -> list[Difference]:
    d, out = wanted.durability, []
    if found.replication != d.replication:
        below = found.replication < d.replication
        out.append(
            Difference(
                found.topic,
                "replication factor",
                str(found.replication),
                str(d.replication),
                d.replication_source,
                below,
                f"with {found.replication} cop{'y' if found.replication == 1 else 'ies'}, losing "
                f"{found.replication} broker(s) loses acknowledged records"
                if below
                else "harmless: more copies than asked (left as they are)",
                Repair.REASSIGN if below else Repair.NONE,
            )
        )
    min_isr = _int(found.configs.get("min.insync.replicas"))
    if min_isr != d.min_insync:
        below = min_isr is None or min_isr < d.min_insync
        out.append(
            Difference(
                found.topic,
                "min.insync.replicas",
                str(min_isr),
                str(d.min_insync),
                d.min_insync_source,
                below,
                f"a write is acknowledged once {min_isr} broker(s) have it, and lost with them"
                if below
                else "writes stop sooner when brokers are down",
                Repair.CONFIGURE,
            )
        )
    return out


def _config(wanted: Wanted, found: Found, name: str) -> Difference | None:
    want, have = wanted.configs()[name], found.configs.get(name)
    if have == want:
        return None
    forever = wanted.spec.kind.kept_forever
    if name in ("retention.ms", "retention.bytes"):
        risky = forever and have != "-1"
        why = (
            f"the cluster deletes records of a {wanted.spec.kind.value} topic, which Loopline "
            "keeps forever: runs lose their history"
            if risky
            else "records are kept for another time than Loopline declares"
        )
    elif name == "cleanup.policy":
        risky = True
        why = "compaction keeps only the last record of each run (every record has its run's key)"
    else:  # max.message.bytes
        smaller = (_int(have) or 0) < int(want)
        risky = smaller
        why = (
            "the broker would refuse records Loopline accepts: a step would fail"
            if smaller
            else "harmless: the broker accepts larger records than Loopline sends"
        )
    shown = _human(name, have) if have is not None else "unknown"
    return Difference(
        found.topic, name, shown, _human(name, want), "declared", risky, why, Repair.CONFIGURE
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _human(name: str, value: str) -> str:
    number = _int(value)
    if number is None or not name.startswith("retention"):
        return value
    if number < 0:
        return f"{value} (forever)"
    if name == "retention.ms" and number % 3_600_000 == 0:
        hours = number // 3_600_000
        if hours % 24:
            return f"{value} ({hours} h)"
        return f"{value} ({hours // 24} day{'s' if hours != 24 else ''})"
    return value


def fix_command(settings: KafkaSettings) -> str:
    """The command that repairs the topics, with the settings that differ from the defaults."""
    defaults = KafkaSettings.model_construct()
    env = []
    for field, variable in (
        ("bootstrap", "LOOPLINE_KAFKA_BOOTSTRAP"),
        ("topic_prefix", "LOOPLINE_KAFKA_TOPIC_PREFIX"),
        ("replication_factor", "LOOPLINE_KAFKA_REPLICATION_FACTOR"),
        ("min_insync_replicas", "LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS"),
    ):
        value = getattr(settings, field)
        if value is not None and value != getattr(defaults, field, None):
            env.append(f"{variable}={shlex.quote(str(value))}")
    for field, variable in (
        ("replication_by_class", "LOOPLINE_KAFKA_REPLICATION_BY_CLASS"),
        ("min_insync_by_class", "LOOPLINE_KAFKA_MIN_INSYNC_BY_CLASS"),
    ):
        value = getattr(settings, field)
        if value:
            env.append(f"{variable}={shlex.quote(_json(value))}")
    return " ".join([*env, FIX_COMMAND])


def _json(value: Mapping[str, int]) -> str:
    return "{" + ", ".join(f'"{k}": {v}' for k, v in sorted(value.items())) + "}"


class TopicsUnfitError(ConfigurationError):
    """Topics on the cluster put data at risk as they are; the message says which and how to
    repair them."""

    def __init__(self, differences: Sequence[Difference], settings: KafkaSettings):
        self.differences = tuple(differences)
        topics = len({d.topic for d in self.differences})
        lines = [
            f"{topics} topic(s) on the cluster put data at risk as they are:",
            *(f"  {line}" for line in summarise(self.differences)),
            f"Fix: {fix_command(settings)}",
        ]
        super().__init__("\n".join(lines))
