"""The Grafana dashboard, its provisioning, the rules and docker-compose, checked as files.

The dashboard is decoded with grafana-foundation-sdk, Grafana's own generated models of the
dashboard schema, and must come back unchanged: a key the schema does not know is dropped on
the way and fails the comparison. What the models do not check (panel types, the grid, the
datasource) is checked here. Whether the metrics exist is tests/monitoring/test_live_metrics.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard
from monitoring_queries import (
    PROJECT,
    dashboard_queries,
    dashboards,
    metric_names,
    panels,
    recorded_names,
    rule_groups,
    rule_queries,
    without_grafana_variables,
)

CONTRACT_COUNTERS = {
    "loopline_events_consumed_total",
    "loopline_events_produced_total",
    "loopline_events_dead_lettered_total",
    "loopline_handler_retries_total",
    "loopline_runs_started_total",
    "loopline_runs_finished_total",
    "loopline_model_tokens_total",
    "loopline_model_failures_total",
    "loopline_tool_calls_total",
    "loopline_tool_failures_total",
    "loopline_model_cost_usd_total",
    "loopline_stalled_runs_total",
}
CONTRACT_GAUGES = {"loopline_consumer_lag_messages", "loopline_active_runs"}
CONTRACT_HISTOGRAMS = {
    "loopline_handler_duration_seconds",
    "loopline_step_duration_seconds",
    "loopline_run_steps",
    "loopline_model_latency_seconds",
    "loopline_tool_duration_seconds",
}
"""The metrics the services export (the metrics contract in docs/architecture.md)."""

HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
DASHBOARD_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _exported_series(metric: str) -> set[str]:
    if metric in CONTRACT_HISTOGRAMS:
        return {metric + suffix for suffix in HISTOGRAM_SUFFIXES}
    return {metric}


CONTRACT_SERIES = {
    series
    for metric in CONTRACT_COUNTERS | CONTRACT_GAUGES | CONTRACT_HISTOGRAMS
    for series in _exported_series(metric)
}


@pytest.fixture(scope="module", autouse=True)
def _grafana_plugins() -> None:
    """Teach the models every core panel type and datasource query."""
    register_default_plugins()


# -- the PromQL reading the other tests rely on ------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job="loopline"} == 0', {"up"}),
        (
            "histogram_quantile(0.99, sum by (le, kind) (rate(a_seconds_bucket[5m])))",
            {"a_seconds_bucket"},
        ),
        ("sum by (tool) (rate(a_total[5m])) / on (tool) group_left b", {"a_total", "b"}),
        ("x > 100 and deriv(level:x:sum[10m]) > 0", {"x", "level:x:sum"}),
        ("(sum(a) or vector(0)) == 0", {"a"}),
        ("max_over_time(a[10m:1m] offset 5m)", {"a"}),
        ('sum(rate(a{topic=~"agent.retry.*", kind="not_a_metric"}[1m]))', {"a"}),
        ('label_replace(a, "dst", "$1", "src", "(.*)")', {"a"}),
    ],
)
def test_metric_names_are_the_selected_series_only(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_selector_without_a_metric_name_is_refused() -> None:
    with pytest.raises(ValueError, match="without a metric name"):
        metric_names('{__name__=~"loopline_.*"}')


def test_grafana_variables_are_filled_and_unknown_ones_refused() -> None:
    assert without_grafana_variables("rate(a[$__rate_interval])") == "rate(a[1m])"
    with pytest.raises(ValueError, match="unknown Grafana variables"):
        without_grafana_variables('rate(a{instance="$instance"}[1m])')


# -- the dashboard --------------------------------------------------------------------------


def _missing(original: Any, decoded: Any, path: str = "") -> list[str]:
    """Where `original` has a key or value that `decoded` lost or changed."""
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [f"{path}: not an object after decoding"]
        return [
            problem
            for key, value in original.items()
            for problem in (
                _missing(value, decoded[key], f"{path}/{key}")
                if key in decoded
                else [f"{path}/{key}: unknown to the dashboard schema"]
            )
        ]
    if isinstance(original, list):
        if not isinstance(decoded, list) or len(decoded) != len(original):
            return [f"{path}: list changed by decoding"]
        return [
            problem
            for i, (a, b) in enumerate(zip(original, decoded, strict=True))
            for problem in _missing(a, b, f"{path}[{i}]")
        ]
    return [] if original == decoded else [f"{path}: {original!r} became {decoded!r}"]


def test_there_is_a_dashboard() -> None:
    assert list(dashboards()) == ["loopline.json"]


@pytest.mark.parametrize("name", list(dashboards()))
def test_dashboard_decodes_with_grafanas_schema_models_unchanged(name: str) -> None:
    original = dashboards()[name]
    decoded = json.loads(JSONEncoder().encode(Dashboard.from_json(original)))
    assert _missing(original, decoded) == []


def test_a_key_the_schema_does_not_know_is_caught() -> None:
    original = dashboards()["loopline.json"]
    misspelt = json.loads(json.dumps(original))
    misspelt["panels"][1]["targets"][0]["legendFormt"] = "{{kind}}"
    misspelt["panels"][1]["gridPos"]["width"] = 3
    decoded = json.loads(JSONEncoder().encode(Dashboard.from_json(misspelt)))
    assert _missing(misspelt, decoded) == [
        "/panels[1]/gridPos/width: unknown to the dashboard schema",
        "/panels[1]/targets[0]/legendFormt: unknown to the dashboard schema",
    ]


@pytest.mark.parametrize("name", list(dashboards()))
def test_every_panel_is_a_known_type_querying_the_chosen_prometheus(name: str) -> None:
    dashboard = dashboards()[name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert cogruntime.panelcfg_config(panel["type"]) is not None, panel["title"]
        assert panel["datasource"] == DASHBOARD_DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        decoded = Dashboard.from_json({"panels": [panel]}).panels
        assert decoded is not None
        for target in decoded[0].targets or []:  # type: ignore[union-attr]
            assert isinstance(target, prometheus.Dataquery), panel["title"]
            assert target.expr, panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("name", list(dashboards()))
def test_panels_tile_the_grid_without_overlapping(name: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    all_panels = list(panels(dashboards()[name]))
    assert len({p["id"] for p in all_panels}) == len(all_panels), "panel ids repeat"
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


# -- what the queries read ----------------------------------------------------------------------


def test_every_query_parses_and_reads_at_least_one_metric() -> None:
    queries = dashboard_queries() + rule_queries()
    assert len(queries) > 40
    for query in queries:
        assert metric_names(query.expr), query.where


def test_queries_read_only_exported_or_recorded_series() -> None:
    known = CONTRACT_SERIES | recorded_names() | {"up"}
    for query in dashboard_queries() + rule_queries():
        assert metric_names(query.expr) <= known, query.where


def test_the_dashboard_shows_every_exported_metric() -> None:
    read = {n for q in dashboard_queries() for n in metric_names(q.expr)}
    recorded_from = {n for q in rule_queries() if q.records in read for n in metric_names(q.expr)}
    for metric in CONTRACT_COUNTERS | CONTRACT_GAUGES | CONTRACT_HISTOGRAMS:
        assert _exported_series(metric) & (read | recorded_from), f"{metric} is on no panel"


def test_every_recorded_series_is_read_by_a_panel_or_an_alert() -> None:
    read = {
        n
        for q in dashboard_queries() + rule_queries()
        if not q.records
        for n in metric_names(q.expr)
    }
    assert recorded_names() <= read


def test_rule_groups_leave_the_interval_to_the_global_setting() -> None:
    """So the live test's 1 s evaluation reaches every group."""
    for groups in rule_groups().values():
        assert all("interval" not in group for group in groups)


# -- docker compose and Grafana's provisioning (not run here: no Docker engine) ---------------


def _yaml(relative: str) -> Any:
    return yaml.safe_load((PROJECT / relative).read_text())


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the project) of each bind mount."""
    out = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("./"):
            out[container] = host.removeprefix("./")
    return out


def test_compose_runs_prometheus_and_grafana_on_the_checked_in_files() -> None:
    compose = _yaml("docker-compose.yml")["services"]
    loopline = ("memory", "planner", "tool-executor", "recovery")
    assert {*loopline, "prometheus", "grafana"} <= set(compose)
    for name in loopline:
        env = compose[name]["environment"]
        assert env["LOOPLINE_HTTP_PORT"] == "9100"
        assert env["LOOPLINE_HTTP_HOST"] == "0.0.0.0"

    prometheus_mounts = _mounts(compose["prometheus"])
    assert prometheus_mounts["/etc/prometheus/prometheus.yml"] == "infra/prometheus/compose.yml"
    assert prometheus_mounts["/etc/prometheus/rules"] == "infra/prometheus/rules"
    grafana_mounts = _mounts(compose["grafana"])
    assert grafana_mounts["/etc/grafana/provisioning"] == "infra/grafana/provisioning"
    assert grafana_mounts["/var/lib/grafana/dashboards"] == "infra/grafana/dashboards"
    for host in (*prometheus_mounts.values(), *grafana_mounts.values()):
        assert (PROJECT / host).exists(), host

    scrape = _yaml("infra/prometheus/compose.yml")
    assert scrape["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    (job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "loopline"]
    (dns,) = job["dns_sd_configs"]
    assert sorted(dns["names"]) == sorted(loopline)
    assert dns["port"] == 9100


def test_grafana_provisioning_reaches_prometheus_and_the_dashboards() -> None:
    compose = _yaml("docker-compose.yml")["services"]
    (source,) = _yaml("infra/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose
    (provider,) = _yaml("infra/grafana/provisioning/dashboards/loopline.yml")["providers"]
    assert provider["options"]["path"] in _mounts(compose["grafana"])
    home = compose["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.removeprefix(provider["options"]["path"] + "/") in dashboards()
