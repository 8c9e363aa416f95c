"""What the benchmark runs: the workload's sizes, its agent profile and its goals."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from loopline_events import Budget, GoalSubmitted

AGENT = "bench"
"""The agent profile every benchmark run uses."""

AGENTS_TOML = f"""
[agents.{AGENT}]
system_prompt = "Count with the calculator, one number a step."
model = "demo"
tools = ["calculator"]
max_steps = 10000
deadline_s = 3600
"""
"""The benchmark's agents file (LOOPLINE_AGENTS_FILE): the deterministic demo model and the
pure calculator; the goal's budget sets each run's step limit, and the deadline is far enough
that a loaded machine slows runs down rather than failing them."""

TARGETS = {
    "throughput_steps_per_s": 1800.0,
    "cpu_ms_per_step": 1.0,
    "latency_p50_ms": 2.0,
    "latency_p99_ms": 10.0,
    "replay_events_per_s": 50_000.0,
    "failover_s": 10.0,
    "late_over_early": 1.2,
    "quota_ms_per_call": 0.3,
    "hostile_delay_s": 1.0,
}
"""The issue's targets on a 2-core machine (≥ for rates, ≤ for times and CPU)."""

PEERS = {
    "DBOS": {"latency_ms": 3.9, "steps_per_s": 270, "cpu_ms_per_step": 5.0, "concurrency": 100},
    "LangGraph + PostgreSQL": {
        "latency_ms": 2.1,
        "steps_per_s": 448,
        "cpu_ms_per_step": 2.6,
        "concurrency": 100,
    },
}
"""The peers' published figures (PostgreSQL with fsync on every commit)."""


def goal(iterations: int) -> GoalSubmitted:
    """A goal the demo model plays in `iterations` calculator calls, then a final answer.

    "Count to N" makes one calculator call per number ("0 + 1", "1 + 2", ...), so a run has
    N + 1 decisions and N tool results: 2N + 1 durable steps. The budget leaves room for them
    (N + 1 contexts) and one more.
    """
    return GoalSubmitted(
        goal=f"Count to {iterations}", agent=AGENT, budget=Budget(max_steps=iterations + 2)
    )


def steps_per_run(iterations: int) -> int:
    """Durable steps of one run: every decision and every tool result."""
    return 2 * iterations + 1


SIZE_HELP = {
    "latency_runs": "runs, one after another, timed step by step",
    "latency_iterations": "calculator calls of each latency run",
    "throughput_runs": "runs submitted at once for throughput and CPU (and the floor)",
    "throughput_iterations": "calculator calls of each throughput run",
    "replay_events": "events in the log that replay reads",
    "replay_iterations": "calculator calls of the run copied to make the replay log",
    "failover_runs": "runs going on when a replica is killed",
    "failover_iterations": "calculator calls of each failover run",
    "floor_latency_runs": "runs, one after another, timed in the floor",
    "long_iterations": "calculator calls of the long run (bytes and time per step along it)",
    "hostile_runs": "ordinary runs timed alone, then as many each beside a 100 kB hostile goal",
    "hostile_iterations": "calculator calls of each of those ordinary runs",
    "gateway_runs": "runs submitted through the gateway, each followed by its own SSE client",
    "gateway_iterations": "calculator calls of each gateway run",
    "limiter_calls": "model calls' worth of limiter rounds (ask, settle) timed",
    "faust_warmup": "decisions the faust quota job reads before it is timed",
    "faust_events": "decisions (model calls) the faust quota job is timed on",
}
"""What each size means, for --help."""


@dataclass(frozen=True)
class Sizes:
    """How much each part of the benchmark does."""

    latency_runs: int = 20
    latency_iterations: int = 50
    throughput_runs: int = 200
    throughput_iterations: int = 10
    replay_events: int = 100_000
    replay_iterations: int = 50
    failover_runs: int = 16
    failover_iterations: int = 20
    floor_latency_runs: int = 5
    long_iterations: int = 1000
    hostile_runs: int = 10
    hostile_iterations: int = 5
    gateway_runs: int = 200
    gateway_iterations: int = 3
    limiter_calls: int = 5000
    faust_warmup: int = 2000
    faust_events: int = 5000

    def quick(self) -> Sizes:
        """A few seconds of each part: enough to see that the harness works."""
        return dataclasses.replace(
            self,
            latency_runs=3,
            latency_iterations=3,
            throughput_runs=20,
            throughput_iterations=3,
            replay_events=2_000,
            replay_iterations=10,
            failover_runs=4,
            failover_iterations=12,
            floor_latency_runs=2,
            long_iterations=30,
            hostile_runs=2,
            hostile_iterations=2,
            gateway_runs=10,
            gateway_iterations=2,
            limiter_calls=300,
            faust_warmup=200,
            faust_events=300,
        )
