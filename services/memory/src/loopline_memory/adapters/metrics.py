"""Memory's own metrics (prometheus_client's default registry): what the model calls cost."""

from __future__ import annotations

from prometheus_client import Counter

MODEL_COST = Counter(
    "loopline_model_cost_usd",
    "What the models' decisions cost, in USD, priced by memory's price table.",
    ["model"],
)
"""Exposed as `loopline_model_cost_usd_total{model}`."""

_children: dict[str, Counter] = {}


def record_cost(model: str, usd: float) -> None:
    """Add a decision's cost to its model's total (labelled children cached: a dict lookup)."""
    child = _children.get(model)
    if child is None:
        child = _children[model] = MODEL_COST.labels(model=model)
    if usd > 0:
        child.inc(usd)
