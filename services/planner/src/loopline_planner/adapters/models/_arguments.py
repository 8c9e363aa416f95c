"""Tool calls as models write them, made safe: arguments that are not a JSON object, or nest
absurdly deep, spoil one call (the model is told and can correct itself), never the reply.
Shared by every provider's adapter."""

from __future__ import annotations

import json
from typing import Any

from loopline_events import ToolCall

EXCERPT_CHARS = 200
"""How much of a bad body an error quotes: enough to recognise it, not enough to flood logs."""
ARGUMENTS_EXCERPT_CHARS = 80
MAX_ARGUMENTS_DEPTH = 32
"""Arguments nested deeper are refused: no tool's schema goes near it, and an event nested
past what JSON readers take (about 200 levels) could be written but never read back."""
MAX_NAME_CHARS = 128


def tool_call(call_id: str, name: str, raw: object) -> ToolCall:
    """The call, with `arguments_error` set when the arguments are not a JSON object: the
    executor then tells the model, which can correct itself, instead of the run failing.

    `raw` is what the model gave: JSON text (OpenAI), an object (Anthropic, and some
    OpenAI-compatible servers), or nothing for a call without arguments.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ToolCall(call_id=call_id, tool=name)
    arguments = _json_object(raw)
    if arguments is not None and depth(arguments) > MAX_ARGUMENTS_DEPTH:
        return ToolCall(
            call_id=call_id,
            tool=name,
            arguments_error=f"model gave arguments nested deeper than {MAX_ARGUMENTS_DEPTH} levels",
        )
    if arguments is not None:
        return ToolCall(call_id=call_id, tool=name, arguments=arguments)
    shown = raw if isinstance(raw, str) else json.dumps(raw)
    return ToolCall(
        call_id=call_id,
        tool=name,
        arguments_error="model gave arguments that are not a JSON object: "
        + excerpt(shown, ARGUMENTS_EXCERPT_CHARS),
    )


def _json_object(raw: object) -> dict[str, Any] | None:
    """`raw` as a JSON object: a string holding one, or the object itself; None otherwise."""
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


def depth(value: object) -> int:
    """How deeply `value` (parsed JSON) nests objects and arrays; without recursion, so a
    hostile depth cannot exhaust the stack."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def excerpt(text: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """`text` on one line, cut to `limit` characters, quoted."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    flat = " ".join(text.split())
    if not flat:
        return "(empty body)"
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return repr(flat)


def valid_name(name: str) -> bool:
    """A tool name the events can carry."""
    return 0 < len(name) <= MAX_NAME_CHARS


def error_message(body: object, fallback: str) -> str:
    """The provider's `{"error": {"message": ...}}` when the body has it, else `fallback`."""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, str) and message:
        return excerpt(message)
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return excerpt(body["message"])
    return excerpt(fallback)
