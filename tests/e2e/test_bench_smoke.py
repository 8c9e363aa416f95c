"""The benchmark harness still runs: every part at tiny sizes, every figure present and sane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from loopline_runtime import Endpoints

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
RUNS, ITERATIONS = 3, 3
STEPS_PER_RUN = 2 * ITERATIONS + 1
"""Count to 3: four decisions and three tool results."""
SIZES = {
    "latency-runs": RUNS,
    "latency-iterations": ITERATIONS,
    "throughput-runs": RUNS,
    "throughput-iterations": ITERATIONS,
    "replay-events": 300,
    "replay-iterations": ITERATIONS,
    "failover-runs": 4,
    "failover-iterations": 10,
    "long-iterations": 20,
    "hostile-runs": 2,
    "hostile-iterations": 2,
    "gateway-runs": 10,
    "gateway-iterations": 2,
    "floor-latency-runs": 1,
    "limiter-calls": 200,
    "faust-warmup": 100,
    "faust-events": 200,
}
PROCESSES = {"memory", "planner", "tool-executor", "recovery", "kafka", "redis", "postgres"}


@pytest.fixture(scope="module")
def bench_run(loopline_endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One run of `python -m bench` at tiny sizes: its results and what it printed."""
    results_dir = tmp_path_factory.mktemp("bench-results")
    argv = [sys.executable, "-m", "bench", "--results-dir", str(results_dir)]
    argv += [f"--{name}={value}" for name, value in SIZES.items()]
    argv += ["--failover-services", "planner", "--faust-broker", "shared"]
    env = {
        **os.environ,
        "LOOPLINE_KAFKA_BOOTSTRAP": loopline_endpoints.kafka.bootstrap,
        "LOOPLINE_REDIS_URL": loopline_endpoints.redis.url.get_secret_value(),
        "LOOPLINE_POSTGRES_DSN": loopline_endpoints.postgres.dsn.get_secret_value(),
    }
    done = subprocess.run(
        argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=540, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (saved,) = results_dir.glob("*.json")
    return json.loads(saved.read_text()), done.stdout


@pytest.mark.timeout(600)
def test_latency_and_throughput_figures(bench_run: Any) -> None:
    results, printed = bench_run
    latency = results["latency"]["per_step"]
    assert latency["count"] == RUNS * STEPS_PER_RUN
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"] < 60_000
    throughput = results["throughput"]
    assert throughput["durable_steps"] == RUNS * STEPS_PER_RUN
    assert throughput["steps_per_s"] > 0
    cpu = throughput["cpu"]
    assert PROCESSES | {"bench driver"} <= cpu["processes_s"].keys()
    assert cpu["ms_per_step"] > 0
    assert "throughput, durable steps/s" in printed
    assert "CPU per durable step during the throughput window" in printed


@pytest.mark.timeout(600)
def test_the_same_figures_on_a_cluster_of_three_brokers(bench_run: Any) -> None:
    results, printed = bench_run
    cluster = results["cluster"]
    assert cluster["brokers"] == 3
    broker = cluster["durability"]["broker"]
    assert (broker["brokers"], broker["default.replication.factor"]) == (3, "3")
    assert broker["min.insync.replicas"] == "2"
    assert cluster["latency"]["per_step"]["count"] == RUNS * STEPS_PER_RUN
    assert cluster["throughput"]["durable_steps"] == RUNS * STEPS_PER_RUN
    nodes = {"kafka-1", "kafka-2", "kafka-3"}
    assert nodes | (PROCESSES - {"kafka"}) <= cluster["throughput"]["cpu"]["processes_s"].keys()
    (head,) = [line for line in printed.splitlines() if line.startswith("figure ")]
    assert "3 brokers" in head
    assert "on 3 brokers (ms):" in printed


@pytest.mark.timeout(600)
def test_replay_failover_and_floor_figures(bench_run: Any) -> None:
    results, _ = bench_run
    replay = results["replay"]
    assert replay["events"] >= SIZES["replay-events"]
    assert replay["cli"]["events_folded"] == replay["events_per_run"]
    assert replay["in_process"]["events"] == replay["events"]
    assert replay["in_process"]["events_per_s"] > 0
    (failover,) = results["failover"]
    assert failover["service"] == "planner"
    assert failover["all_completed"]
    assert 0 < failover["worst_s"] < 120
    for variant in ("with_stores", "no_io"):
        floor = results["floor"][variant]
        assert floor["durable_steps"] == RUNS * STEPS_PER_RUN
        assert floor["steps_per_s"] > 0
        assert floor["cpu"]["ms_per_step"] > 0


@pytest.mark.timeout(600)
def test_the_limiters_and_the_quotas_cost_per_model_call(bench_run: Any) -> None:
    results, printed = bench_run
    limits = results["limits"]
    for variant in ("rates", "rates_and_quotas"):
        measured = limits[variant]
        assert measured["calls"] == SIZES["limiter-calls"]
        assert measured["client_ms_per_call"] > 0
        assert measured["ms_per_call"] >= measured["client_ms_per_call"]
    faust = limits["faust"]
    assert "error" not in faust, faust.get("error")
    assert faust["events"] == SIZES["faust-events"]
    assert faust["job_ms_per_call"] > 0
    assert "broker_ms_per_call" not in faust  # on the shared broker its share is not told
    assert "of which the faust job, ms" in printed


@pytest.mark.timeout(600)
def test_context_of_the_figures(bench_run: Any) -> None:
    results, printed = bench_run
    assert results["durability"]["producer"]["acks"] == "all"
    assert results["durability"]["postgresql"]["fsync"] in {"on", "off"}
    assert "flush_policy" in results["durability"]["broker"]
    versions = results["versions"]
    assert {"python", "kafka", "aiokafka", "pydantic", "postgresql", "redis"} <= versions.keys()
    assert results["machine"]["cores"] >= 1
    assert results["commit"]
    assert "durability: producer acks=all" in printed


@pytest.mark.timeout(600)
def test_the_gateway_streams_every_run_to_its_end(bench_run: Any) -> None:
    results, printed = bench_run
    gateway = results["gateway"]
    assert gateway["runs_completed"] == gateway["clients"] == SIZES["gateway-runs"]
    assert gateway["events_streamed"] >= SIZES["gateway-runs"] * (2 * 2 + 1)
    assert gateway["gateway_us_per_event"] > 0
    assert "gateway CPU per streamed event, µs" in printed


@pytest.mark.timeout(600)
def test_what_a_hostile_goal_costs_the_others(bench_run: Any) -> None:
    results, printed = bench_run
    hostile = results["hostile"]
    assert hostile["goal_bytes"] > 90_000
    assert hostile["hostile_outcome"] in {"RunCompleted", "RunFailed"}
    assert 0 < hostile["alone_s"]["median"] <= hostile["alone_s"]["max"]
    slowest_beside = hostile["beside_s"]["max"] - hostile["alone_s"]["median"]
    assert abs(hostile["delay_s"] - slowest_beside) <= 0.002  # each rounded to the ms
    assert "delay a 100 kB hostile goal causes a run, s" in printed
