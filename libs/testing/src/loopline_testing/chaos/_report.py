"""What a chaos scenario came to, and the table `make chaos` prints."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

WAIT_TARGET_S = 10.0
"""The target for the wait from a fault to the next step of the runs it interrupted."""
BROKER_TARGET_S = 15.0
"""The target for the longest pause of a run in flight when a broker of a cluster fails: the
controller must notice the broker is gone before its partitions get new leaders."""


@dataclass(frozen=True)
class FaultReport:
    """One injected fault and how long the runs it interrupted waited after it."""

    fault: str
    outage_s: float
    """From the fault to the end of the outage (0 for a kill or a flush)."""
    in_flight: int
    """Runs under way when it struck."""
    worst_wait_s: float | None
    """Longest wait, among those runs, from the fault (or the end of its outage) to a next step."""
    median_wait_s: float | None
    longest_pause_s: float | None = None
    """Longest pause of any of those runs between two of its events, from the fault (or the
    end of its outage) to the next fault: the fault's full cost to a run."""
    target_s: float = WAIT_TARGET_S
    """What the waits should stay under."""
    in_flight_at_end: int | None = None
    """Runs still under way when the fault and its undoing were over: a fault that outlasts
    every run tells little of its later parts."""


@dataclass
class ScenarioReport:
    """Every run of a scenario accounted for."""

    scenario: str
    started: int
    """Goals submitted."""
    completed: int = 0
    """Runs that ended with RunCompleted."""
    completed_as_asked: int = 0
    """Of those, the ones whose answer is the one the goal asks for (every effect recorded);
    the others answer that a call failed, and say which and why."""
    failed: dict[str, int] = field(default_factory=dict)
    """Runs that ended with RunFailed, by reason."""
    failed_without_reason: int = 0
    """RunFailed whose message is empty."""
    cancelled: int = 0
    lost: list[str] = field(default_factory=list)
    """Runs with no result when the scenario gave up waiting."""
    effects_executed: int = 0
    """`record_effect` calls that ran (rows of the counting table)."""
    duplicate_effects: int = 0
    """Calls that ran more than once (count above one)."""
    unexecuted_effects: int = 0
    """Calls reported done whose effect the table does not hold."""
    faults: list[FaultReport] = field(default_factory=list)
    seconds: float = 0.0
    """Wall-clock time of the scenario, from the goals to the last result."""
    notes: list[str] = field(default_factory=list)
    """What is worth a look: lost runs' last events, answers that report failures."""
    brokers: int = 1
    """Kafka brokers the scenario ran on."""
    replayed: int | None = None
    """Runs whose `loopline replay --check` was asked for (None: not asked)."""
    replay_differs: dict[str, str] = field(default_factory=dict)
    """Runs whose replayed state is not memory's, and how."""

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing doubled, every failure stated, every replay memory's state."""
        return (
            not self.lost
            and self.duplicate_effects == 0
            and self.unexecuted_effects == 0
            and self.failed_without_reason == 0
            and not self.replay_differs
            and self.completed + self.failed_total + self.cancelled == self.started
        )

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        data = asdict(self)
        data["failed_total"] = self.failed_total
        data["ok"] = self.ok
        return data


def count_reasons(reasons: list[str]) -> dict[str, int]:
    """How many of each reason, most frequent first."""
    return dict(Counter(reasons).most_common())


def render_table(reports: list[ScenarioReport]) -> str:
    """The chaos table: one line per fault of each scenario, its runs' fate on the first."""
    header = (
        "scenario",
        "brokers",
        "faults injected",
        "runs",
        "completed",
        "failed (reason)",
        "lost",
        "dup effects",
        "effects",
        "in flight (start -> end)",
        "next step worst/median",
        "longest pause",
        "replay = memory",
    )
    rows: list[tuple[str, ...]] = []
    for report in reports:
        failed = ", ".join(f"{n} {reason}" for reason, n in report.failed.items()) or "0"
        completed = str(report.completed)
        if report.completed_as_asked != report.completed:
            completed += f" ({report.completed_as_asked} as asked)"
        runs = (
            report.scenario,
            str(report.brokers),
            "",
            str(report.started),
            completed,
            failed,
            str(len(report.lost)),
            str(report.duplicate_effects),
            str(report.effects_executed),
        )
        replay = _replay(report)
        for i, fault in enumerate(report.faults or [None]):
            first = runs if i == 0 else ("",) * len(runs)
            if fault is None:
                rows.append((*first, "", "", "", replay))
                continue
            name = fault.fault + (f" ({fault.outage_s:.1f} s)" if fault.outage_s >= 0.5 else "")
            rows.append(
                (
                    *first[:2],
                    name,
                    *first[3:],
                    _in_flight(fault),
                    _waits(fault),
                    _seconds(fault.longest_pause_s, fault.target_s),
                    replay if i == 0 else "",
                )
            )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    worst = [f.worst_wait_s for r in reports for f in r.faults if f.worst_wait_s is not None]
    lines.append("")
    lines.append(
        "lost must be 0, dup effects must be 0. next step: from each fault (or the end of its "
        "outage) to the next event of each run in flight; longest pause: the longest any of "
        f"them then went without an event. Target under {WAIT_TARGET_S:g} s, {BROKER_TARGET_S:g} "
        "s when a broker of a cluster fails (! marks a miss)"
        + (f"; worst wait {max(worst):.1f} s" if worst else "")
        + ". replay = memory: runs whose `loopline replay --check` found memory's state."
    )
    return "\n".join(lines)


def _replay(report: ScenarioReport) -> str:
    if report.replayed is None:
        return ""
    return f"{report.replayed - len(report.replay_differs)}/{report.replayed}"


def _in_flight(fault: FaultReport) -> str:
    if fault.in_flight_at_end is None:
        return str(fault.in_flight)
    return f"{fault.in_flight} -> {fault.in_flight_at_end}"


def _waits(fault: FaultReport) -> str:
    if fault.worst_wait_s is None or fault.median_wait_s is None:
        return "-"
    flag = " !" if fault.worst_wait_s >= fault.target_s else ""
    return f"{fault.worst_wait_s:.1f} / {fault.median_wait_s:.1f} s{flag}"


def _seconds(value: float | None, target_s: float) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" + (" !" if value >= target_s else "")
