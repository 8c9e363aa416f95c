"""`@tool` and `Tool`: what is inferred from the function, and clear errors when misused."""

from __future__ import annotations

from typing import Any

import pytest
from loopline_events import ToolSpec
from loopline_tools import Effect, RetryPolicy, Tool, ToolContext, tool
from pydantic import BaseModel, Field


class GreetArgs(BaseModel):
    name: str = Field(description="Who to greet.")
    times: int = Field(default=1, ge=1, le=3)


class OtherArgs(BaseModel):
    x: int


@tool()
async def greet(args: GreetArgs, ctx: ToolContext) -> str:
    """Greet someone
    by name.

    This second paragraph is for humans reading the code, not for the model.
    """
    return " ".join([f"hello {args.name}"] * args.times)


def test_name_description_and_args_model_are_inferred() -> None:
    assert isinstance(greet, Tool)
    assert greet.name == "greet"
    assert greet.description == "Greet someone by name."
    assert greet.args_model is GreetArgs
    assert greet.effect is Effect.PURE
    assert greet.timeout_s == 10.0
    assert greet.retry == RetryPolicy()


def test_spec_shows_the_json_schema_of_the_arguments() -> None:
    assert greet.spec() == ToolSpec(
        name="greet",
        description="Greet someone by name.",
        parameters=GreetArgs.model_json_schema(),
    )
    assert greet.spec().parameters["required"] == ["name"]


async def test_the_decorated_function_still_runs() -> None:
    ctx = ToolContext(run_id="r", call_id="c")
    assert await greet.fn(GreetArgs(name="ada", times=2), ctx) == "hello ada hello ada"


def test_explicit_settings_win() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff_s=0.5, max_backoff_s=4.0)

    @tool(
        name="send_mail",
        description="Send one e-mail.",
        effect=Effect.SIDE_EFFECT,
        timeout_s=2.5,
        retry=policy,
    )
    async def mail(args: OtherArgs, ctx: ToolContext) -> str:
        return "sent"

    assert (mail.name, mail.description) == ("send_mail", "Send one e-mail.")
    assert (mail.effect, mail.timeout_s, mail.retry) == (Effect.SIDE_EFFECT, 2.5, policy)


def test_a_sync_function_is_refused() -> None:
    def sync(args: OtherArgs, ctx: ToolContext) -> str:
        """Not async."""
        return ""

    with pytest.raises(TypeError, match="async def"):
        tool()(sync)  # type: ignore[arg-type]


def test_bare_decorator_without_parentheses_is_a_type_error() -> None:
    async def f(args: OtherArgs, ctx: ToolContext) -> str:
        """Doc."""
        return ""

    bare: Any = tool  # what a caller without a type checker could write
    with pytest.raises(TypeError, match="positional"):
        bare(f)


def test_the_first_parameter_must_be_a_pydantic_model() -> None:
    async def plain(args: dict[str, Any], ctx: ToolContext) -> str:
        """Doc."""
        return ""

    async def missing(args, ctx: ToolContext) -> str:  # type: ignore[no-untyped-def]
        """Doc."""
        return ""

    for fn in (plain, missing):
        with pytest.raises(TypeError, match="BaseModel subclass"):
            tool()(fn)


async def _unresolvable(args: NotDefinedAnywhere, ctx: ToolContext) -> str:  # type: ignore[name-defined]  # noqa: F821
    """Its annotation names nothing."""
    return ""


def test_an_unresolvable_annotation_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="cannot resolve the annotations"):
        tool()(_unresolvable)


def test_the_signature_must_be_args_then_context() -> None:
    async def one(args: OtherArgs) -> str:
        """Doc."""
        return ""

    async def keyword_only(args: OtherArgs, *, ctx: ToolContext) -> str:
        """Doc."""
        return ""

    async def wrong_context(args: OtherArgs, ctx: int) -> str:
        """Doc."""
        return ""

    for fn in (one, keyword_only):
        with pytest.raises(TypeError, match="exactly"):
            tool()(fn)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ToolContext"):
        tool()(wrong_context)  # type: ignore[arg-type]


def test_a_tool_without_a_description_is_refused() -> None:
    async def undocumented(args: OtherArgs, ctx: ToolContext) -> str:
        return ""

    with pytest.raises(TypeError, match="no docstring"):
        tool()(undocumented)
    assert tool(description="Documented here.")(undocumented).description == "Documented here."


def test_names_and_timeouts_are_checked() -> None:
    async def fn(args: OtherArgs, ctx: ToolContext) -> str:
        """Doc."""
        return ""

    with pytest.raises(ValueError, match="must match"):
        tool(name="has spaces")(fn)
    with pytest.raises(ValueError, match="timeout_s"):
        tool(timeout_s=0)(fn)
    with pytest.raises(TypeError, match="BaseModel"):
        Tool(name="t", description="d", args_model=dict, fn=fn)  # type: ignore[arg-type]
