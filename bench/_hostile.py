"""What a hostile goal costs everyone else: an ordinary run's time alone, then the same run
started beside a goal of about 100 kB written to make the demo model's parser work hard
("1+1 then multiply multiply ..."). The difference is the delay the hostile goal caused; no
handler may let one message hold up the others' runs by more than a second."""

from __future__ import annotations

import statistics
from typing import Any

from loopline_bus import Outbound
from loopline_events import GOALS, Envelope, GoalSubmitted

from bench._live import RUN_TIMEOUT_S, BenchError, Driver
from bench._progress import say
from bench._sizes import AGENT
from bench._steps import check_counted, new_run_ids

HOSTILE_GOAL = "1+1 then " + "multiply " * 11_000
"""About 100 kB: an ordinary goal by its size, a pathological one for a naive parser."""


async def hostile(driver: Driver, runs: int, iterations: int) -> dict[str, Any]:
    """`runs` bystander runs alone, then `runs` each beside a hostile goal; seconds each."""
    alone = [await _bystander(driver, iterations, f"alone{i}") for i in range(runs)]
    beside = []
    for i in range(runs):
        (attack,) = new_run_ids(1, f"hostile{i}")
        driver.log.expect([attack])
        bad = GoalSubmitted(goal=HOSTILE_GOAL, agent=AGENT)
        await driver.bus.publish_many(
            [Outbound(GOALS.name, Envelope.of(bad, run_id=attack, producer="bench"))]
        )
        beside.append(await _bystander(driver, iterations, f"beside{i}"))
        try:
            await driver.log.wait_finished([attack], RUN_TIMEOUT_S)
        except TimeoutError:
            raise BenchError(f"hostile: the hostile goal {attack} never ended") from None
        if (i + 1) % max(1, runs // 4) == 0:
            say(f"hostile: {i + 1}/{runs} bystanders beside a hostile goal")
    delays = [b - statistics.median(alone) for b in beside]
    return {
        "runs": runs,
        "iterations": iterations,
        "goal_bytes": len(HOSTILE_GOAL.encode()),
        "alone_s": _seconds(alone),
        "beside_s": _seconds(beside),
        "delay_s": round(max(delays), 3),
        "hostile_outcome": driver.log.runs[attack].result,
    }


async def _bystander(driver: Driver, iterations: int, tag: str) -> float:
    """Seconds from one ordinary run's goal acknowledged to its result read."""
    (run_id,) = await driver.run(1, iterations, tag)
    trace = driver.log.runs[run_id]
    if check_counted(driver.log, [run_id], iterations):
        raise BenchError(f"hostile: the bystander {run_id} went wrong")
    return trace.finished - trace.submitted


def _seconds(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }
