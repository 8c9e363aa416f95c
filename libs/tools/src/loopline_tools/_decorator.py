"""`@tool`: declare a tool from an async function and its arguments model."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from loopline_tools._core import DEFAULT_RETRY, Effect, Reconcile, RetryPolicy, Tool, ToolContext

ToolFunction = Callable[[Any, ToolContext], Awaitable[str]]
"""`async def f(args: SomeArgsModel, ctx: ToolContext) -> str`."""


def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    effect: Effect = Effect.PURE,
    timeout_s: float = 10.0,
    retry: RetryPolicy = DEFAULT_RETRY,
    reconcile: Reconcile | None = None,
) -> Callable[[ToolFunction], Tool]:
    """Turn `async def f(args: SomeArgsModel, ctx: ToolContext) -> str` into a `Tool`.

    The name defaults to the function's name, the description to the first paragraph of its
    docstring, and the arguments model is the annotation of its first parameter.
    `reconcile` is the side-effecting tool's hook for calls a crash left unfinished
    (see `Tool.reconcile`).
    """

    def decorate(fn: ToolFunction) -> Tool:
        label = getattr(fn, "__qualname__", repr(fn))
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@tool needs an `async def` function; {label} is not one")
        return Tool(
            name=name if name is not None else fn.__name__,
            description=description if description is not None else _description(fn, label),
            args_model=_args_model(fn, label),
            fn=fn,
            effect=effect,
            timeout_s=timeout_s,
            retry=retry,
            reconcile=reconcile,
        )

    return decorate


def _description(fn: ToolFunction, label: str) -> str:
    doc = inspect.getdoc(fn)
    if not doc or not doc.strip():
        # The model chooses tools by their description: a tool without one is a bug.
        raise TypeError(f"@tool: {label} has no docstring; write one or pass description=")
    first_paragraph = doc.strip().split("\n\n", 1)[0]
    return " ".join(first_paragraph.split())


def _args_model(fn: ToolFunction, label: str) -> type[BaseModel]:
    params = list(inspect.signature(fn).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) != 2 or any(p.kind not in positional for p in params):
        raise TypeError(f"@tool: {label} must take exactly (args: SomeArgsModel, ctx: ToolContext)")
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise TypeError(f"@tool: cannot resolve the annotations of {label}: {exc}") from exc
    model = hints.get(params[0].name)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(
            f"@tool: the first parameter of {label} must be annotated with a pydantic "
            f"BaseModel subclass, not {model!r}"
        )
    ctx_type = hints.get(params[1].name, ToolContext)
    if ctx_type is not ToolContext:
        raise TypeError(f"@tool: the second parameter of {label} must be a ToolContext")
    return model
