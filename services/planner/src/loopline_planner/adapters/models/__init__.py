"""The planner's model adapters: the demo model, any OpenAI-compatible API, and the retries
around them.

```python
model = build_model("openai:gpt-4o-mini", ModelSettings())
reply, attempts = await complete_with_retries(model, request, max_attempts=4, timeout_s=60)
```
"""

from loopline_planner.adapters.models._build import build_model
from loopline_planner.adapters.models._demo import DemoModel
from loopline_planner.adapters.models._openai import OpenAIChatModel
from loopline_planner.adapters.models._retries import complete_with_retries
from loopline_planner.adapters.models._settings import ModelSettings
from loopline_planner.adapters.models._types import (
    ModelAdapter,
    ModelError,
    ModelReply,
    ModelRequest,
)

__all__ = [
    "DemoModel",
    "ModelAdapter",
    "ModelError",
    "ModelReply",
    "ModelRequest",
    "ModelSettings",
    "OpenAIChatModel",
    "build_model",
    "complete_with_retries",
]
