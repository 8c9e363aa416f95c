"""The guards Loopline ships (entry points of group `loopline.guards`): `redact_secrets` and
`spend_limit`."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from loopline_events import Message, ToolCall
from pydantic import Field, field_validator

from loopline_runtime._guards import (
    PASS,
    Action,
    Guard,
    GuardContext,
    GuardOptions,
    Rewrite,
    Trip,
    Verdict,
)
from loopline_runtime._secrets import MASK, luhn_valid, mask_cards, redact

LARGE_CHARS = 256 * 1024
"""Texts longer than this are redacted in a worker thread: a large output (up to 64 Mi
characters) takes seconds, which the event loop cannot wait."""


def redact_secrets_in(text: str) -> str:
    """`text` with API keys, bearer tokens, this process's own secrets and payment card
    numbers masked."""
    return mask_cards(redact(text))


def redact_value(value: Any) -> Any:
    """A JSON value with every secret in it masked (strings, and numbers that are card
    numbers); the same object when there was none."""
    if isinstance(value, str):
        cleaned = redact_secrets_in(value)
        return value if cleaned == value else cleaned
    if isinstance(value, int) and not isinstance(value, bool):
        return MASK if luhn_valid(str(abs(value))) else value
    if isinstance(value, dict):
        items = {k: redact_value(v) for k, v in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    if isinstance(value, list):
        listed = [redact_value(v) for v in value]
        return value if all(a is b for a, b in zip(listed, value, strict=True)) else listed
    return value


class RedactSecretsOptions(GuardOptions):
    """Where `redact_secrets` masks secrets."""

    arguments: bool = Field(default=True, description="In tool calls' arguments.")
    outputs: bool = Field(
        default=True, description="In tool calls' outputs, before the run (and the log) reads them."
    )
    messages: bool = Field(
        default=False,
        description="In the messages sent to the model (the goal, the steering a person adds).",
    )


class RedactSecrets(Guard):
    """Masks API keys (`sk-…`, `AKIA…`, `ghp_…`, `xoxb-…`, `Bearer …`) and payment card
    numbers (by the Luhn check) as `[redacted]`: it rewrites, it never trips."""

    Options = RedactSecretsOptions

    def __init__(self, options: RedactSecretsOptions) -> None:
        super().__init__(options)
        self.where = options

    async def before_model(
        self, messages: tuple[Message, ...], at: GuardContext
    ) -> Verdict[tuple[Message, ...]]:
        if not self.where.messages:
            return PASS
        cleaned = tuple(_redact_message(m) for m in messages)
        if all(a is b for a, b in zip(cleaned, messages, strict=True)):
            return PASS
        return Rewrite(cleaned)

    async def before_tool(
        self, call: ToolCall, effect: str, at: GuardContext
    ) -> Verdict[dict[str, Any]]:
        if not self.where.arguments:
            return PASS
        cleaned = redact_value(call.arguments)
        return PASS if cleaned is call.arguments else Rewrite(cleaned)

    async def after_tool(self, call: ToolCall, output: str, at: GuardContext) -> Verdict[str]:
        if not self.where.outputs:
            return PASS
        if len(output) > LARGE_CHARS:
            cleaned = await asyncio.to_thread(redact_secrets_in, output)
        else:
            cleaned = redact_secrets_in(output)
        return PASS if cleaned == output else Rewrite(cleaned)


def _redact_message(message: Message) -> Message:
    content = redact_secrets_in(message.content)
    calls = tuple(
        c.model_copy(update={"arguments": redact_value(c.arguments)}) for c in message.tool_calls
    )
    changed = any(
        a.arguments is not b.arguments for a, b in zip(calls, message.tool_calls, strict=True)
    )
    if content == message.content and not changed:
        return message
    return message.model_copy(update={"content": content, "tool_calls": calls})


class SpendLimitOptions(GuardOptions):
    """Which argument of which tool `spend_limit` keeps under a maximum."""

    tool: tuple[str, ...] = Field(
        min_length=1, description="The tool (or tools) whose calls are checked."
    )
    argument: str = Field(
        min_length=1,
        description="The numeric argument checked; `a.b` for field `b` of object argument `a`.",
    )
    max: float = Field(allow_inf_nan=False, description="The most the argument may be.")
    action: Action = Field(
        default="tell",
        description="Over the maximum: `tell` the model (the call fails), or `fail` the run.",
    )

    @field_validator("tool", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class SpendLimit(Guard):
    """Trips on a call of the tool whose argument is over the maximum, or is not a number (a
    limit that cannot read the amount lets nothing through). A call without the argument
    passes: the tool's own checks refuse it, or its default applies."""

    Options = SpendLimitOptions

    def __init__(self, options: SpendLimitOptions) -> None:
        super().__init__(options)
        self.limit = options

    async def before_tool(
        self, call: ToolCall, effect: str, at: GuardContext
    ) -> Verdict[dict[str, Any]]:
        limit = self.limit
        if call.tool not in limit.tool:
            return PASS
        found, value = _lookup(call.arguments, limit.argument)
        if not found:
            return PASS
        amount = _number(value)
        if amount is None:
            return Trip(
                f"{call.tool}: {limit.argument} is {value!r}, not a number the spend limit "
                "can check",
                limit.action,
            )
        if amount > limit.max:
            return Trip(
                f"{call.tool}: {limit.argument} = {value} is over the limit of {limit.max:g}",
                limit.action,
            )
        return PASS


def _lookup(arguments: dict[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = arguments
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _number(value: Any) -> int | float | None:
    """The number `value` is, as a tool's arguments model would read it (a numeric string
    too); None when it is none, or not finite."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value  # compared exactly, however large
    amount: float
    if isinstance(value, float):
        amount = value
    elif isinstance(value, str):
        try:
            amount = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return amount if math.isfinite(amount) else None
