"""The Messages API format: a request as Anthropic takes it (with `cache_control` on its stable
prefix), and a streamed reply's events put back together. Pure: the SDK does the HTTP.

Prompt caching: the API caches the prefix of a request up to each block marked
`cache_control` (in the order tools, system, messages) and bills a later request that starts
with the same prefix at the cached-input price. A run's requests grow by one round each step
and keep everything before, so the marks go on what stays: the last tool, the last system
block, and the last block of the history (everything up to the step now asked for). The next
step's request starts with that whole prefix and reads it from the cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from anthropic.types import (
    InputJSONDelta,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStreamEvent,
    TextBlock,
    TextDelta,
    ToolUseBlock,
)
from loopline_events import Message, TokenUsage, ToolSpec

from loopline_planner.adapters.models._arguments import tool_call, valid_name
from loopline_planner.adapters.models._types import ModelError, ModelReply

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class WireRequest:
    """The parts of a Messages API request that come from the step."""

    system: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]


def wire_request(messages: tuple[Message, ...], tools: tuple[ToolSpec, ...]) -> WireRequest:
    """The conversation as Messages API system blocks, messages and tools, the stable prefix
    marked for caching."""
    leading = 0
    while leading < len(messages) and messages[leading].role == "system":
        leading += 1
    system: list[dict[str, Any]] = [
        {"type": "text", "text": m.content} for m in messages[:leading] if m.content
    ]
    turns: list[dict[str, Any]] = []
    for message in messages[leading:]:
        role, blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:  # the API wants turns to alternate
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    wired_tools: list[dict[str, Any]] = [
        {
            "name": t.name,
            "description": t.description,
            "input_schema": t.parameters or {"type": "object", "properties": {}},
        }
        for t in tools
    ]
    for part in (system, wired_tools, turns[-1]["content"] if turns else []):
        if part:
            part[-1]["cache_control"] = EPHEMERAL
    return WireRequest(system=system, messages=turns, tools=wired_tools)


def _blocks(message: Message) -> tuple[str, list[dict[str, Any]]]:
    """A message's role in the Messages API and its content blocks."""
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ModelError(
                "the context has a tool message without a tool_call_id", retryable=False
            )
        result = {
            "type": "tool_result",
            "tool_use_id": safe_id(message.tool_call_id),
            "content": message.content or "(no output)",
        }
        return "user", [result]
    text = [{"type": "text", "text": message.content}] if message.content else []
    if message.role == "assistant":
        uses = [
            {"type": "tool_use", "id": safe_id(c.call_id), "name": c.tool, "input": c.arguments}
            for c in message.tool_calls
        ]
        return "assistant", [*text, *uses]
    # A user message, or a system note in the middle of the conversation (the API takes
    # system text only before it): the model reads it where it stands, as the user's.
    return "user", text


def safe_id(call_id: str) -> str:
    """A call id as the API accepts it (letters, digits, `_`, `-`): the same for the call and
    its result, so calls decided by another provider (a fallback) still pair up."""
    return _UNSAFE_ID.sub("_", call_id)


@dataclass
class _Block:
    kind: str
    id: str = ""
    name: str = ""
    text: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


@dataclass
class EventAccumulator:
    """A streamed message, event by event: its text and tool-use blocks (whose input arrives
    as pieces of JSON) and its usage (input at the start, output at the end)."""

    blocks: dict[int, _Block] = field(default_factory=dict)
    usage: TokenUsage = field(default_factory=TokenUsage)
    started: bool = False
    stopped: bool = False
    """`message_delta` gave the stop reason: the stream did not end early."""

    def add(self, event: RawMessageStreamEvent) -> str:
        """Take `event` in; the text it adds ('' if none)."""
        if isinstance(event, RawMessageStartEvent):
            self.started = True
            u = event.message.usage
            read, written = u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0
            self.usage = TokenUsage(
                prompt_tokens=u.input_tokens + read + written,
                completion_tokens=u.output_tokens,
                cached_tokens=read,
                cache_write_tokens=written,
            )
        elif isinstance(event, RawContentBlockStartEvent):
            block = event.content_block
            if isinstance(block, ToolUseBlock):
                self.blocks[event.index] = _Block("tool_use", block.id, block.name)
            elif isinstance(block, TextBlock):
                self.blocks[event.index] = _Block("text", text=[block.text])
                return block.text
        elif isinstance(event, RawContentBlockDeltaEvent):
            return self._delta(event)
        elif isinstance(event, RawMessageDeltaEvent):
            self.stopped = self.stopped or event.delta.stop_reason is not None
            self.usage = self.usage.model_copy(
                update={"completion_tokens": event.usage.output_tokens}
            )
        return ""

    def _delta(self, event: RawContentBlockDeltaEvent) -> str:
        block = self.blocks.get(event.index)
        if block is None:
            return ""  # a block of a kind not followed (thinking, server tools)
        if isinstance(event.delta, TextDelta):
            block.text.append(event.delta.text)
            return event.delta.text
        if isinstance(event.delta, InputJSONDelta):
            block.arguments.append(event.delta.partial_json)
        return ""

    def reply(self) -> ModelReply:
        """The whole reply; a non-retryable `ModelError` when the stream held none."""
        if not self.started:
            raise ModelError(
                "malformed reply from the model API (no message_start in the stream)",
                retryable=False,
            )
        if not self.stopped:
            raise ModelError("the stream ended before the reply did", retryable=True)
        uses = [b for _, b in sorted(self.blocks.items()) if b.kind == "tool_use"]
        if uses:
            for use in uses:
                if not use.id or not valid_name(use.name):
                    raise ModelError(
                        "malformed reply from the model API (a tool_use block has no id or "
                        "no valid name)",
                        retryable=False,
                    )
            calls = tuple(tool_call(u.id, u.name, "".join(u.arguments)) for u in uses)
            return ModelReply(tool_calls=calls, usage=self.usage)
        text = "".join("".join(b.text) for _, b in sorted(self.blocks.items()))
        if text:
            return ModelReply(final_answer=text, usage=self.usage)
        raise ModelError("the model gave an empty reply (no text, no tool use)", retryable=False)
