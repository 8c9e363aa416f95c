"""The planner's model adapters: the demo model, any OpenAI-compatible API and Anthropic's
Messages API, each through its official SDK, streamed, behind one interface.

```python
model = build_model("anthropic:claude-sonnet-4-5", ModelSettings())
reply = await model.complete(request, on_text=print_as_it_comes)
```
"""

import importlib
from typing import TYPE_CHECKING, Any

from loopline_planner.adapters.models._build import ADAPTERS, build_model, load_adapters
from loopline_planner.adapters.models._demo import DemoModel
from loopline_planner.adapters.models._settings import ModelSettings
from loopline_planner.adapters.models._types import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelRequest,
    TextSink,
    provider_of,
)

if TYPE_CHECKING:
    from loopline_planner.adapters.models._anthropic import AnthropicModel
    from loopline_planner.adapters.models._openai import OpenAIChatModel

_ADAPTER_CLASSES = {"AnthropicModel": ADAPTERS["anthropic"], "OpenAIChatModel": ADAPTERS["openai"]}


def __getattr__(name: str) -> Any:
    """The providers' adapters, imported when first asked for (each imports its SDK)."""
    module = _ADAPTER_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AnthropicModel",
    "DemoModel",
    "ModelAdapter",
    "ModelError",
    "ModelReply",
    "ModelRequest",
    "ModelSettings",
    "OpenAIChatModel",
    "TextSink",
    "build_model",
    "load_adapters",
    "provider_of",
]
