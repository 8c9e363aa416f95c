"""The Chat Completions wire format: Loopline's context to a request body, a response to a reply.

Pure functions, no I/O: the HTTP adapter sends what `request_body` builds and hands whatever
comes back to `parse_response` or `status_error`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from loopline_events import Message, TokenUsage, ToolCall
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopline_planner.adapters.models._types import ModelError, ModelReply, ModelRequest

EXCERPT_CHARS = 200
"""How much of a bad body an error quotes: enough to recognise it, not enough to flood logs."""
ARGUMENTS_EXCERPT_CHARS = 80
MAX_ARGUMENTS_DEPTH = 32
"""Arguments nested deeper are refused: no tool's schema goes near it, and an event nested
past what JSON readers take (about 200 levels) could be written but never read back."""


def request_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """The Chat Completions request asking `model` for the next step of `request`."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in request.messages],
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters or {"type": "object", "properties": {}},
                },
            }
            for t in request.tools
        ]
        # Only with tools: the API rejects a tool_choice when no tools are given.
        body["tool_choice"] = "auto"
    return body


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ModelError(
                "the context has a tool message without a tool_call_id", retryable=False
            )
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [_wire_call(c) for c in message.tool_calls],
        }
    return {"role": message.role, "content": message.content}


def _wire_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.tool, "arguments": json.dumps(call.arguments)},
    }


class _Function(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    # Anything: arguments that are not a JSON object spoil one call, not the whole reply.
    arguments: Any = None


class _WireToolCall(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    function: _Function


class _WireMessage(BaseModel):
    content: str | None = None
    tool_calls: list[_WireToolCall] | None = None


class _Choice(BaseModel):
    message: _WireMessage


class _Usage(BaseModel):
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)


class _Completion(BaseModel):
    # Servers add fields of their own (system_fingerprint, logprobs...); only these matter.
    model_config = ConfigDict(extra="ignore")

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


def parse_response(status: int, body: bytes) -> ModelReply:
    """The reply in a successful response; a non-retryable `ModelError` when it is malformed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise _malformed(status, "the body is not JSON", body) from None
    try:
        completion = _Completion.model_validate(data)
    except ValidationError as exc:
        raise _malformed(status, _first_problem(exc), body) from None
    message = completion.choices[0].message
    usage = completion.usage or _Usage()
    tokens = TokenUsage(
        prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0
    )
    if message.tool_calls:
        calls = tuple(_tool_call(c) for c in message.tool_calls)
        return ModelReply(tool_calls=calls, usage=tokens)
    if message.content:
        return ModelReply(final_answer=message.content, usage=tokens)
    raise ModelError(
        f"HTTP {status}: the model gave an empty reply (no content, no tool calls): "
        f"{excerpt(body)}",
        retryable=False,
    )


def _tool_call(call: _WireToolCall) -> ToolCall:
    """The call, with `arguments_error` set when the arguments are not a JSON object: the
    executor then tells the model, which can correct itself, instead of the run failing."""
    raw = call.function.arguments
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        # Some compatible servers send nothing for a call without arguments.
        return ToolCall(call_id=call.id, tool=call.function.name)
    arguments = _json_object(raw)
    if arguments is not None and depth(arguments) > MAX_ARGUMENTS_DEPTH:
        return ToolCall(
            call_id=call.id,
            tool=call.function.name,
            arguments_error=f"model gave arguments nested deeper than {MAX_ARGUMENTS_DEPTH} levels",
        )
    if arguments is not None:
        return ToolCall(call_id=call.id, tool=call.function.name, arguments=arguments)
    shown = raw if isinstance(raw, str) else json.dumps(raw)
    return ToolCall(
        call_id=call.id,
        tool=call.function.name,
        arguments_error="model gave arguments that are not a JSON object: "
        + excerpt(shown, ARGUMENTS_EXCERPT_CHARS),
    )


def _json_object(raw: object) -> dict[str, Any] | None:
    """`raw` as a JSON object: a string holding one, or (from some compatible servers) the
    object itself; None for anything else."""
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


def status_error(status: int, body: bytes, retry_after: str | None) -> ModelError:
    """The error for a response that is not a success, with its retry policy."""
    retryable = status in (408, 409, 429) or status >= 500
    return ModelError(
        f"HTTP {status} from the model API: {_error_message(body)}",
        retryable=retryable,
        retry_after_s=parse_retry_after(retry_after) if retryable else None,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After: <seconds>` header; None when absent or not a number."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:  # the HTTP-date form: backoff takes over, which is good enough
        return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _error_message(body: bytes) -> str:
    """OpenAI's `{"error": {"message": ...}}` when the body has it, else an excerpt."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return excerpt(body)
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, str) and message:
        return excerpt(message)
    return excerpt(body)


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the body"
    return f"{where}: {error['msg']}"


def _malformed(status: int, problem: str, body: bytes) -> ModelError:
    return ModelError(
        f"HTTP {status}: malformed reply from the model API ({problem}): {excerpt(body)}",
        retryable=False,
    )


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
