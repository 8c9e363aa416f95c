"""The watchdog never takes a batch for read without the watches of its partitions: what it
cannot load at assignment it loads with the first batch, and a batch it cannot load for fails
(to be read again), rather than being skipped and committed."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from loopline_recovery.domain import Fail, Kind, Location, Seen, Watch
from loopline_recovery.watchdog import Timings, Watchdog


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
