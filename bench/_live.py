"""Latency and throughput of the four services as separate processes on Kafka."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from loopline_bus import KafkaBus

from bench._namespace import System
from bench._proc import CpuWindow
from bench._progress import say
from bench._sizes import steps_per_run
from bench._stats import summary_ms
from bench._steps import StepLog, check_counted, new_run_ids, submit

RUN_TIMEOUT_S = 300.0
"""Longest wait for a set of runs to finish before the benchmark reports a failure."""


class BenchError(RuntimeError):
    """The system did not do what the benchmark asked (a run failed or never finished)."""


@dataclass
class Driver:
    """The benchmark's client of a running system: it submits goals and reads the steps."""

    system: System
    bus: KafkaBus
    log: StepLog

    async def run(self, runs: int, iterations: int, tag: str) -> list[str]:
        """Submit `runs` goals at once and wait until every one counted to `iterations`."""
        run_ids = new_run_ids(runs, tag)
        await submit(self.bus, self.log, run_ids, iterations)
        await self.finish(run_ids, iterations, tag)
        return run_ids

    async def finish(self, run_ids: list[str], iterations: int, tag: str) -> None:
        """Wait for the runs' results; BenchError unless each counted to `iterations`."""
        try:
            await self.log.wait_finished(run_ids, RUN_TIMEOUT_S)
        except TimeoutError:
            done = sum(self.log.runs[r].result is not None for r in run_ids)
            raise BenchError(
                f"{tag}: {done} of {len(run_ids)} runs finished in {RUN_TIMEOUT_S}s"
            ) from None
        wrong = check_counted(self.log, run_ids, iterations)
        if wrong:
            raise BenchError(f"{tag}: {len(wrong)} runs went wrong, e.g. {wrong[0]}")


async def latency(driver: Driver, runs: int, iterations: int) -> dict[str, Any]:
    """One run at a time: the time each durable step took, from the previous one."""
    gaps: list[float] = []
    by_clock: list[float] = []
    early: list[float] = []
    late: list[float] = []
    per_run: list[float] = []
    for i in range(runs):
        (run_id,) = await driver.run(1, iterations, f"latency{i}")
        trace = driver.log.runs[run_id]
        run_gaps = trace.gaps()
        gaps += run_gaps
        by_clock += trace.gaps(clock="occurred")
        early += run_gaps[:20]
        late += run_gaps[-20:]
        per_run.append(trace.finished - trace.submitted)
        if (i + 1) % max(1, runs // 4) == 0:
            say(f"latency: {i + 1}/{runs} runs")
    return {
        "runs": runs,
        "iterations": iterations,
        "steps_per_run": steps_per_run(iterations),
        "per_step": summary_ms(gaps),
        "per_step_by_occurred_at": summary_ms(by_clock),
        "first_20_steps": summary_ms(early),
        "last_20_steps": summary_ms(late),
        "per_run": summary_ms(per_run),
    }


async def throughput(driver: Driver, runs: int, iterations: int) -> dict[str, Any]:
    """`runs` runs at once: durable steps per second, and CPU per step of every process.

    The window runs from just before the goals are sent to the last result read.
    """
    cpu = CpuWindow(driver.system.watched())
    cpu.start()
    started = time.perf_counter()
    run_ids = await driver.run(runs, iterations, "throughput")
    ended = max(driver.log.runs[r].finished for r in run_ids)
    cpu.stop()
    steps = sum(len(driver.log.runs[r].steps) for r in run_ids)
    window = ended - started
    expected = runs * steps_per_run(iterations)
    if steps != expected:
        raise BenchError(f"throughput: {steps} durable steps read, {expected} expected")
    return {
        "runs": runs,
        "iterations": iterations,
        "durable_steps": steps,
        "window_s": round(window, 3),
        "steps_per_s": round(steps / window, 1),
        "cpu": cpu.as_dict(steps),
        "per_step_under_load": summary_ms([g for r in run_ids for g in driver.log.runs[r].gaps()]),
    }
