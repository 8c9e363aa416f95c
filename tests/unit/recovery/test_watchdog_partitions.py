"""The watchdog never takes a batch for read without the watches of its partitions: what it
cannot load at assignment it loads with the first batch, and a batch it cannot load for fails
(to be read again), rather than being skipped and committed."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from loopline_recovery.domain import Expire, Fail, Kind, Location, Seen, Watch
from loopline_recovery.watchdog import EARLY_RUNS, Timings, Watchdog


class FlakyTable:
    """Watches in a dict; `down` makes loads fail as an unreachable Redis would."""

    def __init__(self) -> None:
        self.stored: dict[int, dict[str, Watch]] = {}
        self.down = False

    async def load(self, partition: int) -> dict[str, Watch]:
        if self.down:
            raise ConnectionError("Redis is away")
        return dict(self.stored.get(partition, {}))

    async def save(self, changed: Mapping[int, Mapping[str, Watch | None]]) -> None:
        for partition, runs in changed.items():
            held = self.stored.setdefault(partition, {})
            for run_id, watch in runs.items():
                if watch is None:
                    held.pop(run_id, None)
                else:
                    held[run_id] = watch


class NoActions:
    async def redrive(self, where: Location, tries: int) -> bool:
        raise AssertionError("nothing is overdue here")

    async def fail(self, watch: Watch, fail: Fail) -> None:
        raise AssertionError("nothing is overdue here")

    async def deny(self, watch: Watch, expire: Expire) -> None:
        raise AssertionError("nothing is overdue here")


def goal(partition: int) -> tuple[int, Seen]:
    where = Location("agent.goals", partition, 0)
    return partition, Seen(Kind.GOAL, f"run-{partition}", 0, "e", where, occurred_at=1.0)


async def test_watches_not_loaded_at_assignment_are_loaded_with_the_first_batch() -> None:
    table = FlakyTable()
    watchdog = Watchdog(table, NoActions(), Timings({}, 60.0))
    table.down = True
    await watchdog.assigned({0, 1})  # logged, not raised: the rebalance goes on
    assert watchdog.runs == {}
    with pytest.raises(ConnectionError):
        await watchdog.observe([goal(0)])  # the batch fails: read again, not committed
    table.down = False
    await watchdog.observe([goal(0)])
    assert set(watchdog.runs[0]) == {"run-0"}
    assert set(table.stored[0]) == {"run-0"}


def record(kind: Kind, run_id: str, seq: int, topic: str) -> tuple[int, Seen]:
    return 0, Seen(kind, run_id, seq, f"{run_id}-{kind.name}", Location(topic, 0, 0))


async def test_a_context_read_before_its_goal_counts_once_the_goal_comes() -> None:
    """The run topics are fetched apart: a run's context can be read before its goal."""
    table = FlakyTable()
    watchdog = Watchdog(table, NoActions(), Timings({}, 60.0))
    await watchdog.observe([record(Kind.CONTEXT, "run-0", 1, "agent.contexts")])
    assert watchdog.runs[0] == {}  # no goal yet, no watch
    await watchdog.observe([goal(0)])
    watch = watchdog.runs[0]["run-0"]
    assert (watch.kind, watch.seq) == (Kind.CONTEXT, 1)
    assert watch.pending == Location("agent.contexts", 0, 0)
    assert watchdog.early[0] == {}


async def test_a_run_that_ended_before_its_goal_was_read_is_not_watched() -> None:
    table = FlakyTable()
    watchdog = Watchdog(table, NoActions(), Timings({}, 60.0))
    await watchdog.observe([record(Kind.RESULT, "run-0", 3, "agent.results")])
    await watchdog.observe([goal(0)])
    assert watchdog.runs[0] == {}
    assert table.stored.get(0, {}) == {}


async def test_records_of_runs_that_never_start_are_kept_a_bounded_few() -> None:
    watchdog = Watchdog(FlakyTable(), NoActions(), Timings({}, 60.0))
    forged = [record(Kind.CONTEXT, f"forged-{n}", 1, "agent.contexts") for n in range(5_000)]
    await watchdog.observe(forged)
    assert len(watchdog.early[0]) == EARLY_RUNS
    assert "forged-4999" in watchdog.early[0]
    assert "forged-0" not in watchdog.early[0]
