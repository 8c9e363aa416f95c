"""`build_model`: the adapter a model id names."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterable

from loopline_planner.adapters.models._demo import DemoModel
from loopline_planner.adapters.models._settings import ModelSettings
from loopline_planner.adapters.models._types import ModelAdapter

ACCEPTED_FORMS = '"demo", "openai", "openai:<model name>", "anthropic" or "anthropic:<model name>"'

ADAPTERS = {
    "openai": "loopline_planner.adapters.models._openai",
    "anthropic": "loopline_planner.adapters.models._anthropic",
}
"""Each provider's adapter, and with it the provider's SDK (a second of CPU to import, for
Anthropic's): loaded with the first model of that provider a planner calls."""


async def load_adapters(models: Iterable[str]) -> None:
    """Import the adapters of `models` not imported yet, in a thread: the event loop goes on
    serving other runs' steps while a provider's SDK loads."""
    for model in models:
        module = ADAPTERS.get(model.partition(":")[0])
        if module is not None and module not in sys.modules:
            await asyncio.to_thread(importlib.import_module, module)


def build_model(model: str, settings: ModelSettings) -> ModelAdapter:
    """The adapter for `model`: `demo`, `openai` / `anthropic` (the model their settings
    name) or `openai:<model name>` / `anthropic:<model name>`; `ValueError` for anything else."""
    if model == "demo":
        return DemoModel()
    prefix, colon, name = model.partition(":")
    name = name.strip()
    if colon and not name:
        raise ValueError(f"unknown model {model!r}: use {ACCEPTED_FORMS}")
    if prefix == "openai":
        from loopline_planner.adapters.models._openai import OpenAIChatModel

        return OpenAIChatModel(
            base_url=settings.openai_base_url,
            model=name or settings.openai_model,
            api_key=settings.openai_api_key,
            timeout_s=settings.timeout_s,
        )
    if prefix == "anthropic":
        from loopline_planner.adapters.models._anthropic import AnthropicModel

        return AnthropicModel(
            model=name or settings.anthropic_model,
            base_url=settings.anthropic_base_url,
            api_key=settings.anthropic_api_key,
            max_tokens=settings.anthropic_max_tokens,
            timeout_s=settings.timeout_s,
        )
    raise ValueError(f"unknown model {model!r}: use {ACCEPTED_FORMS}")
