"""Every service process serves /metrics, /healthz and /readyz, is named in a Prometheus target
file, and after one goal its metrics show the run; with a span exporter configured, the run's
steps in all four services form one trace."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from loopline_bus import RUN_TOPICS, read_history
from loopline_events import GOALS, RunCompleted
from loopline_testing import System
from prometheus_client.parser import text_string_to_metric_families

from loopline.sdk import Loopline

pytestmark = pytest.mark.e2e
TIMEOUT = 60.0
SERVICES = ("memory", "planner", "tool-executor", "recovery")
LAG = "loopline_consumer_lag_messages"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


EXPECTED: dict[str, list[tuple[str, dict[str, str]]]] = {
    "memory": [
        ("loopline_events_consumed_total", {"topic": "agent.goals", "type": "GoalSubmitted"}),
        ("loopline_events_consumed_total", {"topic": "agent.decisions", "type": "ModelDecided"}),
        (
            "loopline_events_produced_total",
            {"topic": "agent.contexts", "type": "ContextAssembled"},
        ),
        ("loopline_events_produced_total", {"topic": "agent.results", "type": "RunCompleted"}),
        ("loopline_runs_started_total", {"agent": "calculator"}),
        ("loopline_runs_finished_total", {"outcome": "completed", "reason": ""}),
        ("loopline_run_steps_count", {}),
        (
            "loopline_handler_duration_seconds_count",
            {"topic": "agent.observations", "type": "ToolCallSucceeded"},
        ),
    ],
    "planner": [
        ("loopline_events_consumed_total", {"topic": "agent.contexts", "type": "ContextAssembled"}),
        ("loopline_events_produced_total", {"topic": "agent.decisions", "type": "ModelDecided"}),
        ("loopline_model_latency_seconds_count", {"model": "demo"}),
        ("loopline_model_tokens_total", {"model": "demo", "kind": "prompt"}),
        ("loopline_model_tokens_total", {"model": "demo", "kind": "completion"}),
        ("loopline_step_duration_seconds_count", {"kind": "decision"}),
    ],
    "tool-executor": [
        ("loopline_events_consumed_total", {"topic": "agent.decisions", "type": "ModelDecided"}),
        (
            "loopline_events_produced_total",
            {"topic": "agent.observations", "type": "ToolCallSucceeded"},
        ),
        ("loopline_tool_calls_total", {"tool": "calculator", "outcome": "succeeded"}),
        ("loopline_tool_duration_seconds_count", {"tool": "calculator"}),
        ("loopline_step_duration_seconds_count", {"kind": "observation"}),
    ],
    "recovery": [],
}


async def scrape(
    http: httpx.AsyncClient, url: str | None, expected: list[tuple[str, dict[str, str]]]
) -> Samples:
    """The service's samples once they hold every expected series and its consumer lag (known
    after its first fetches); else nothing."""
    response = await http.get(f"{url}/metrics")
    assert response.status_code == 200
    samples = parse(response.text)
    complete = all(value(samples, m, **ls) >= 1 for m, ls in expected) and any(
        n == LAG for n, _ in samples
    )
    return samples if complete else {}


async def is_ready(http: httpx.AsyncClient, url: str | None) -> bool:
    return (await http.get(f"{url}/readyz")).status_code == 200


async def until(check: Callable[[], Any], what: str) -> Any:
    """Await `check()` until it returns something truthy; fail saying `what` after TIMEOUT."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_each_service_serves_its_health_and_metrics_and_a_run_is_one_trace(
    start_system: Callable[..., System],
) -> None:
    # Spans printed to each service's log: the simplest exporter there is, and a real one.
    system = start_system(env_extra={"OTEL_TRACES_EXPORTER": "console"})
    statuses = {s.name: s for s in system.services.status()}
    assert set(statuses) == set(SERVICES)
    urls = {name: s.url for name, s in statuses.items()}
    assert all(urls.values()), urls
    assert len(set(urls.values())) == 4

    for name, status in statuses.items():
        target = json.loads((system.services.targets / f"{name}.json").read_text())
        assert target == [
            {
                "targets": [f"127.0.0.1:{status.http_port}"],
                "labels": {"service": name, "instance": name},
            }
        ]

    async with httpx.AsyncClient(timeout=10.0) as http:
        for name, url in urls.items():
            assert (await http.get(f"{url}/healthz")).status_code == 200, name

            await until(functools.partial(is_ready, http, url), f"{name} to be ready")

        async with Loopline(system.kafka, producer="e2e") as client:
            run = await client.submit("Compute 17 + 25", agent="calculator")
            result = await run.result(timeout=TIMEOUT)
        assert isinstance(result.payload, RunCompleted)

        for name, expected in EXPECTED.items():
            samples = await until(
                functools.partial(scrape, http, urls[name], expected), f"the metrics of {name}"
            )
            assert value(samples, "process_resident_memory_bytes") > 0, name
            groups = {dict(ls)["group"] for n, ls in samples if n == LAG}
            assert groups, f"{name} reports no consumer lag"
            assert all(g.startswith(name.split("-")[0]) for g in groups), groups
            labels = {v for _, ls in samples for k, v in ls if k not in ("le", "quantile")}
            assert result.run_id not in labels, f"{name} labels a series with the run id"

    # Every event of the run, in every topic, carries the trace the SDK started.
    history = await read_history(system.kafka, [GOALS.name, *RUN_TOPICS], result.run_id)
    assert len(history) >= 6
    trace_ids = {r.event.trace.traceparent.split("-")[1] for r in history if r.event.trace}
    assert len(trace_ids) == 1, trace_ids
    assert all(r.event.trace for r in history)
    [trace_id] = trace_ids

    env = {**os.environ, **system.env, "LOOPLINE_HOME": str(system.services.dir.parent)}
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "loopline.cli", "services", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert {row["name"]: row["url"] for row in json.loads(shown.stdout)} == urls

    # Stopping flushes the span exporter; the targets go with the services.
    system.services.down(say=lambda _: None)
    assert not list(system.services.targets.glob("*.json"))
    for name in ("memory", "planner", "tool-executor"):
        log = (system.services.dir / f"{name}.log").read_text()
        assert f'"trace_id": "0x{trace_id}"' in log, f"no span of the run in {name}'s log"
