"""The context window: estimate a context's tokens and compact it to fit its budget.

Tokens are estimated, offline and the same everywhere, at four characters a token plus a few
per message (role and framing) — close enough for English and JSON with the common tokenizers,
and deterministic, so a replay compacts exactly as the live run did.

Compaction keeps the head (system prompts, recalled memories, the goal) and the latest round
(the last assistant message and its tool results, and any notes after it); it leaves out the
oldest rounds whole — never a tool call without its result — behind one explicit marker. When
even that does not fit, the latest results are cut, with a marker saying so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from loopline_events import Message, ToolSpec

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4

ARTIFACT_THRESHOLD = 64 * 1024
"""Tool outputs longer than this (characters) are stored once as artifacts and referenced."""
ARTIFACT_PREVIEW = 4_000
"""How much of a stored output the context still shows."""


def estimate_text(text: str) -> int:
    """Tokens of `text`, estimated."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimate_message(message: Message) -> int:
    """Tokens of one message, estimated, framing included."""
    calls = "".join(c.tool + json.dumps(c.arguments, sort_keys=True) for c in message.tool_calls)
    return MESSAGE_OVERHEAD_TOKENS + estimate_text(message.content + calls)


def estimate(messages: Sequence[Message], tools: Sequence[ToolSpec] = ()) -> int:
    """Tokens of a context, estimated: its messages and the schemas of its tools."""
    schemas = sum(estimate_text(t.model_dump_json()) for t in tools)
    return schemas + sum(estimate_message(m) for m in messages)


def _head_length(messages: Sequence[Message]) -> int:
    """Messages up to and including the goal (the first user message)."""
    for i, m in enumerate(messages):
        if m.role == "user":
            return i + 1
    return len(messages)


def _rounds(body: Sequence[Message]) -> list[list[Message]]:
    """`body` cut into groups that stay whole: an assistant message with its tool results."""
    groups: list[list[Message]] = []
    for m in body:
        if m.role == "tool" and groups:
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def compact(messages: Sequence[Message], budget: int, fixed: int = 0) -> tuple[Message, ...]:
    """`messages`, compacted to fit `budget` tokens with `fixed` tokens taken (tool schemas)."""
    if fixed + estimate(messages) <= budget:
        return tuple(messages)
    cut = _head_length(messages)
    head, groups = list(messages[:cut]), _rounds(messages[cut:])
    latest = _latest(groups)
    older = groups[: len(groups) - len(latest)]
    kept: list[list[Message]] = []
    # The marker's size is bounded by the largest counts it could show.
    longest = _marker(len(messages), estimate(messages))
    room = budget - fixed - estimate([*head, longest, *_flat(latest)])
    for group in reversed(older):
        cost = estimate(group)
        if cost > room:
            break
        kept.insert(0, group)
        room -= cost
    left_out = _flat(older[: len(older) - len(kept)])
    marker = [_marker(len(left_out), estimate(left_out))] if left_out else []
    tail = _flat(latest)
    if room < 0:
        tail = _shrink(tail, -room)
    return (*head, *marker, *_flat(kept), *tail)


def _latest(groups: list[list[Message]]) -> list[list[Message]]:
    """The last round that has tool calls, and every note after it."""
    for i in range(len(groups) - 1, -1, -1):
        if groups[i][0].role == "assistant":
            return groups[i:]
    return groups[-1:]


def _flat(groups: Sequence[Sequence[Message]]) -> list[Message]:
    return [m for g in groups for m in g]


def _marker(count: int, tokens: int) -> Message:
    return Message(
        role="user",
        content=f"[loopline] {count} earlier messages (about {tokens} tokens) were left out "
        "to keep this context within its budget.",
    )


def _shrink(tail: list[Message], excess: int) -> list[Message]:
    """Cut the longest tool results of `tail` until `excess` tokens are gone."""
    out = list(tail)
    for i in sorted(range(len(out)), key=lambda j: -len(out[j].content)):
        if excess <= 0:
            break
        text = out[i].content
        if out[i].role != "tool":
            continue
        longest = len(_cut_marker(len(text), len(text)))
        keep = max(0, len(text) - (excess + 1) * CHARS_PER_TOKEN - longest)
        cut = text[:keep] + _cut_marker(keep, len(text))
        if len(cut) < len(text):
            out[i] = out[i].model_copy(update={"content": cut})
            excess -= estimate_text(text) - estimate_text(cut)
    return out


def _cut_marker(kept: int, total: int) -> str:
    return f"\n[loopline: cut to fit the context: {kept} of {total} characters shown]"


def artifact_ref(output: str) -> str:
    """The reference of a stored output: the SHA-256 of its UTF-8 bytes."""
    return "sha256:" + hashlib.sha256(output.encode()).hexdigest()


def referenced(output: str) -> str:
    """What a context shows of a tool output: all of it, or, when it is long, its start and
    the reference under which memory stored it whole."""
    if len(output) <= ARTIFACT_THRESHOLD:
        return output
    return (
        output[:ARTIFACT_PREVIEW]
        + f"\n[loopline: output of {len(output)} characters, stored whole as artifact "
        f"{artifact_ref(output)}; the first {ARTIFACT_PREVIEW} are shown]"
    )
