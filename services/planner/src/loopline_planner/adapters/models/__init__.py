"""The planner's model adapters: the demo model, any OpenAI-compatible API and Anthropic's
Messages API, each through its official SDK, streamed, behind one interface.

```python
model = build_model("anthropic:claude-sonnet-4-5", ModelSettings())
reply = await model.complete(request, on_text=print_as_it_comes)
```
"""

from loopline_planner.adapters.models._anthropic import AnthropicModel
from loopline_planner.adapters.models._build import build_model
from loopline_planner.adapters.models._demo import DemoModel
from loopline_planner.adapters.models._openai import OpenAIChatModel
from loopline_planner.adapters.models._settings import ModelSettings
from loopline_planner.adapters.models._types import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelRequest,
    TextSink,
    provider_of,
)

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
    "provider_of",
]
