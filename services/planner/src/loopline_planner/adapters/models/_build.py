"""`build_model`: the adapter a profile's `model` names."""

from __future__ import annotations

from loopline_planner.adapters.models._demo import DemoModel
from loopline_planner.adapters.models._openai import OpenAIChatModel
from loopline_planner.adapters.models._settings import ModelSettings
from loopline_planner.adapters.models._types import ModelAdapter

ACCEPTED_FORMS = '"demo", "openai" or "openai:<model name>"'


def build_model(model: str, settings: ModelSettings) -> ModelAdapter:
    """The adapter for `model`: `demo`, `openai` (the model in `settings.openai_model`) or
    `openai:<model name>`; `ValueError` for anything else."""
    if model == "demo":
        return DemoModel()
    if model == "openai":
        return _openai(settings.openai_model, settings)
    prefix, _, name = model.partition(":")
    if prefix == "openai" and name.strip():
        return _openai(name.strip(), settings)
    raise ValueError(f"unknown model {model!r}: use {ACCEPTED_FORMS}")


def _openai(name: str, settings: ModelSettings) -> OpenAIChatModel:
    return OpenAIChatModel(
        base_url=settings.openai_base_url,
        model=name,
        api_key=settings.openai_api_key,
        timeout_s=settings.timeout_s,
    )
