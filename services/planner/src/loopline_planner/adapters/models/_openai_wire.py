"""The Chat Completions format: a request's messages and tools as the API takes them, and a
streamed reply's chunks put back together. Pure: the SDK does the HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from loopline_events import Message, TokenUsage, ToolCall, ToolSpec
from openai.types.chat import ChatCompletionChunk

from loopline_planner.adapters.models._arguments import tool_call, valid_name
from loopline_planner.adapters.models._types import ModelError, ModelReply


def wire_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The conversation as Chat Completions messages."""
    return [_message(m) for m in messages]


def wire_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """The tools as Chat Completions function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}},
            },
        }
        for t in tools
    ]


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


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class ChunkAccumulator:
    """A streamed completion, chunk by chunk: its text, its tool calls (whose ids, names and
    arguments arrive in pieces, by index) and its usage (in the last chunk, when asked for)."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    usage: TokenUsage | None = None
    chunks: int = 0
    finished: bool = False
    """A chunk gave the reply's finish reason: the stream did not end early."""

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take `chunk` in; the text it adds ('' if none)."""
        self.chunks += 1
        if chunk.usage is not None:
            details = chunk.usage.prompt_tokens_details
            self.usage = TokenUsage(
                prompt_tokens=chunk.usage.prompt_tokens,
                completion_tokens=chunk.usage.completion_tokens,
                cached_tokens=(details.cached_tokens or 0) if details else 0,
            )
        added = ""
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # one choice is asked for; others would be another server's idea
            if choice.finish_reason is not None:
                self.finished = True
            delta = choice.delta
            if delta.content:
                self.text.append(delta.content)
                added += delta.content
            for piece in delta.tool_calls or ():
                partial = self.calls.setdefault(piece.index, _PartialCall())
                partial.id = piece.id or partial.id
                if piece.function is not None:
                    partial.name += piece.function.name or ""
                    partial.arguments.append(piece.function.arguments or "")
        return added

    def reply(self) -> ModelReply:
        """The whole reply; a non-retryable `ModelError` when the stream held none, a retryable
        one when it ended before the reply did."""
        if not self.chunks:
            raise _malformed("no completion chunk in the response")
        if not self.finished:
            raise ModelError("the stream ended before the reply did", retryable=True)
        usage = self.usage or TokenUsage()
        if self.calls:
            calls = []
            for index, partial in sorted(self.calls.items()):
                if not partial.id or not valid_name(partial.name):
                    raise _malformed(f"tool call {index} has no id or no valid name")
                calls.append(tool_call(partial.id, partial.name, "".join(partial.arguments)))
            return ModelReply(tool_calls=tuple(calls), usage=usage)
        text = "".join(self.text)
        if text:
            return ModelReply(final_answer=text, usage=usage)
        raise ModelError(
            "the model gave an empty reply (no content, no tool calls)", retryable=False
        )


def _malformed(problem: str) -> ModelError:
    return ModelError(f"malformed reply from the model API ({problem})", retryable=False)
