"""A real Prometheus scrapes the four services while runs go through them; every metric a
dashboard panel or a rule reads must then be in what it scraped.

The Prometheus is private (a free port, a data folder of the test's own, a 1 s interval),
configured by the same code as `loopline infra up`'s, pointed at this system's target files.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from loopline_events import Budget, FailureReason, RunCompleted, RunFailed, ToolCallFailed
from loopline_infra import SERVICES, Paths, Prometheus, default_paths, default_ports
from loopline_testing import System
from loopline_testing.openai_server import (
    OpenAIServer,
    RecordedRequest,
    tool_call_completion,
)
from monitoring_queries import (
    Query,
    dashboard_queries,
    metric_names,
    recorded_names,
    rule_queries,
)

from loopline.sdk import Loopline

T = TypeVar("T")

HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
NOT_DRIVEN = {"loopline_handler_retries_total": "counter"}
"""Metrics whose series only a fault makes (a handler's retryable error: PostgreSQL lost in the
middle of a call), not caused here: the scrape must declare them, with this type. Every other
metric must have series (the watchdog's stalled-runs counter starts at 0 for both actions)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def model_server() -> Iterator[OpenAIServer]:
    """An OpenAI-compatible model that repeats one tool call forever, unless scripted."""

    def same_call(_: RecordedRequest) -> dict[str, Any]:
        return tool_call_completion([("calculator", {"expression": "1 + 1"})])

    with OpenAIServer(default=same_call) as server:
        yield server


@pytest.fixture
def observed(start_system: Callable[..., System], model_server: OpenAIServer) -> System:
    return start_system(
        env_extra={"OPENAI_BASE_URL": model_server.base_url, "OPENAI_API_KEY": "sk-test"}
    )


@pytest.fixture
async def prometheus(observed: System, tmp_path: Path) -> AsyncIterator[Prometheus]:
    base = default_paths()
    component = Prometheus(
        Paths(project=base.project, home=tmp_path, cache=base.cache),
        dataclasses.replace(default_ports(), prometheus=_free_port()),
        targets_dir=observed.services.dir / "targets",
        scrape_interval_s=1,
    )
    component.check_ports_free()
    component.prepare(say=lambda _: None)
    component.start()
    try:
        await component.wait_ready(timeout=60)
        yield component
    finally:
        component.stop()


@pytest.mark.timeout(300)
async def test_every_metric_the_dashboards_and_rules_read_is_scraped(
    observed: System, model_server: OpenAIServer, prometheus: Prometheus
) -> None:
    api = PrometheusAPI(prometheus.endpoint)
    started = time.time()
    await _drive_runs(observed, model_server)
    await _until(lambda: _targets_up(api), "every service instance scraped and up")

    queries = dashboard_queries() + rule_queries()
    needed = {n for q in queries for n in metric_names(q.expr)} - recorded_names()
    needed |= _histogram_series(needed)
    missing = await _until(
        lambda: _not_scraped(api, needed - NOT_DRIVEN.keys()),
        "every metric read by a panel or a rule scraped",
        done=lambda left: not left,
        timeout=60,
    )
    assert missing == set()
    declared = await api.get("/api/v1/metadata")
    for name, kind in NOT_DRIVEN.items():
        # Scraped as OpenMetrics, a counter's family is named without its `_total`.
        family = declared.get(name) or declared.get(name.removesuffix("_total"), [])
        assert [m["type"] for m in family] == [kind], f"{name} is not declared"

    rules = await _until(lambda: _rules_evaluated_since(api, started), "rules evaluated")
    assert len(rules) == len(rule_queries()), "not every rule was evaluated since the start"
    for rule in rules:
        assert rule["health"] == "ok", rule
        assert not rule.get("lastError"), rule
    await _every_query_evaluates(api, queries)


async def _drive_runs(system: System, server: OpenAIServer) -> None:
    """Runs that make every driven metric appear: tools, failures, a dead letter, endings."""
    async with Loopline(system.kafka, producer="e2e") as client:
        # First and alone: the model's one malformed reply must reach this run.
        server.reply_raw(200, b"<html>this is not the API</html>")
        broken = await client.submit("What is 6 * 7?", agent="openai")
        outcome = (await broken.result(timeout=60)).payload
        assert isinstance(outcome, RunFailed)
        assert outcome.reason is FailureReason.MODEL_ERROR

        await client._bus.publish_raw("agent.goals", b"{not json", key=b"bad-run")
        completed = await client.submit("Compute 17 + 25, then multiply the result by 3")
        forbidden = await client.submit("What time is it?", agent="calculator")
        over_budget = await client.submit("Count to 100", budget=Budget(max_steps=2))
        looping = await client.submit("What is 1 + 1?", agent="looper")
        forbidden_steps = [e.payload async for e in forbidden.steps()]
        results = await asyncio.gather(
            *(r.result(timeout=90) for r in (completed, over_budget, looping))
        )
    assert isinstance(results[0].payload, RunCompleted)
    assert any(isinstance(p, ToolCallFailed) for p in forbidden_steps)
    assert isinstance(forbidden_steps[-1], RunCompleted)
    assert [r.payload.reason for r in results[1:]] == [
        FailureReason.MAX_STEPS,
        FailureReason.NO_PROGRESS,
    ]


class PrometheusAPI:
    """The few calls of Prometheus's HTTP API the test makes (urllib, in a thread)."""

    def __init__(self, base: str):
        self.base = base

    async def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        return await asyncio.to_thread(self._get, url)

    @staticmethod
    def _get(url: str) -> Any:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # a bad query: 400 with the error in the body
            body = json.load(exc)
        assert body["status"] == "success", body.get("error", body)
        return body["data"]


async def _targets_up(api: PrometheusAPI) -> bool:
    targets = (await api.get("/api/v1/targets", state="active"))["activeTargets"]
    loopline = [t for t in targets if t["labels"]["job"] == "loopline"]
    return {t["labels"]["instance"] for t in loopline} == set(SERVICES) and all(
        t["health"] == "up" and t["labels"]["service"] == t["labels"]["instance"] for t in loopline
    )


async def _not_scraped(api: PrometheusAPI, names: set[str]) -> set[str]:
    scraped = set(await api.get("/api/v1/label/__name__/values"))
    return names - scraped


def _histogram_series(names: set[str]) -> set[str]:
    """For a histogram read through one of its series, all three of them."""
    bases = {n.removesuffix(s) for n in names for s in HISTOGRAM_SUFFIXES if n.endswith(s)}
    return {base + suffix for base in bases for suffix in HISTOGRAM_SUFFIXES}


async def _rules_evaluated_since(api: PrometheusAPI, started: float) -> list[dict[str, Any]]:
    """Every rule, once each has been evaluated after `started`; else an empty list."""
    groups = (await api.get("/api/v1/rules"))["groups"]
    rules = [r for g in groups for r in g["rules"]]
    evaluated = all(_timestamp(r["lastEvaluation"]) > started for r in rules)
    return rules if rules and evaluated else []


def _timestamp(rfc3339: str) -> float:
    # Prometheus writes nanoseconds; Python parses up to microseconds.
    head, _, tail = rfc3339.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(tail + '000000')[:6]}+00:00").timestamp()


async def _every_query_evaluates(api: PrometheusAPI, queries: list[Query]) -> None:
    for query in queries:
        try:
            await api.get("/api/v1/query", query=query.expr)
        except AssertionError as exc:
            raise AssertionError(f"{query.where}: {query.expr!r} failed: {exc}") from exc


async def _until(
    check: Callable[[], Awaitable[T]],
    what: str,
    *,
    done: Callable[[T], bool] = bool,
    timeout: float = 60.0,
) -> T:
    """Poll `check` until `done(result)`; after `timeout`, the last result (or a failure)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if done(result):
            return result
        if time.monotonic() > deadline:
            if isinstance(result, bool):
                raise AssertionError(f"not after {timeout:.0f}s: {what}")
            return result
        await asyncio.sleep(0.5)
