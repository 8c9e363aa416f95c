"""Every PromQL expression the checked-in monitoring runs, and the metric names each one reads.

The Grafana dashboards (infra/grafana/dashboards/*.json) and the Prometheus rules
(infra/prometheus/rules/*.yml) are read as files; the expressions are parsed with
promql-parser (a PromQL parser that follows Prometheus's grammar), never with regexes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

PROJECT = Path(__file__).resolve().parents[2]
DASHBOARDS = PROJECT / "infra" / "grafana" / "dashboards"
RULES = PROJECT / "infra" / "prometheus" / "rules"

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
"""What Grafana puts in place of its built-in variables, with typical values."""

_VARIABLE = re.compile(r"\$\{?\w+\}?")


@dataclass(frozen=True)
class Query:
    """One expression: where it comes from and its PromQL, Grafana's variables filled in."""

    where: str
    expr: str
    records: str | None = None
    """The series it writes, for a recording rule."""


def dashboards() -> dict[str, dict[str, Any]]:
    """Each dashboard's JSON by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, those nested in collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def rule_groups() -> dict[str, list[dict[str, Any]]]:
    """Each rules file's groups by file name."""
    return {
        path.name: yaml.safe_load(path.read_text())["groups"]
        for path in sorted(RULES.glob("*.yml"))
    }


def dashboard_queries() -> list[Query]:
    """The query of every target of every panel."""
    return [
        Query(
            f"{name}: panel {panel['title']!r} query {target['refId']}",
            without_grafana_variables(target["expr"]),
        )
        for name, dashboard in dashboards().items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def rule_queries() -> list[Query]:
    """The expression of every recording and alert rule."""
    return [
        Query(f"{name}: {_rule_name(rule)}", rule["expr"], rule.get("record"))
        for name, groups in rule_groups().items()
        for group in groups
        for rule in group["rules"]
    ]


def recorded_names() -> set[str]:
    """The series the recording rules write."""
    return {q.records for q in rule_queries() if q.records}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not its labels, functions or strings)."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if not node.name:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def without_grafana_variables(expr: str) -> str:
    """`expr` with Grafana's built-in variables replaced; an unknown variable is an error."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    left = _VARIABLE.findall(expr)
    if left:
        raise ValueError(f"unknown Grafana variables {left} in {expr!r}")
    return expr


def _rule_name(rule: dict[str, Any]) -> str:
    return f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}"
