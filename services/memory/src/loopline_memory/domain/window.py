"""The context window: what of a run's history the next model request holds.

Tokens are counted with a real tokenizer (o200k_base, offline, the same everywhere), once per
message as it joins the history; a stored output counts the tokens its artifact was stored
with. The window is planned from those counts and the run's running total, so planning costs
what the window holds, never what the history does.

When the history does not fit the budget, the window keeps the head (system prompts, recalled
memories, the goal) and the latest round (the last assistant message, its tool results, and
any notes after it), then as many whole older rounds as fit, newest first — never a tool call
without its result — and a note stands in for the ones left out: a marker saying so, or their
summary when the profile compacts by summary. When even the latest round does not fit, its
longest tool results are shown in part (a stored output: as much of it as fits, and how to
read the rest).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from loopline_artifacts import count_tokens
from loopline_events import Cut, Message, ToolSpec, Window, artifact_marker, cut_marker

MESSAGE_OVERHEAD_TOKENS = 4
"""Role and framing of a message, on top of its text."""


def message_tokens(message: Message) -> int:
    """Tokens of one message, framing included."""
    body = message.artifact.tokens if message.artifact else count_tokens(message.content)
    if message.tool_calls:
        calls = "".join(
            c.tool + json.dumps(c.arguments, sort_keys=True) for c in message.tool_calls
        )
        body += count_tokens(calls)
    return MESSAGE_OVERHEAD_TOKENS + body


def tools_tokens(tools: Sequence[ToolSpec]) -> int:
    """Tokens the tools' schemas take in a request."""
    return sum(count_tokens(t.model_dump_json()) for t in tools)


def left_out_note(count: int, tokens: int) -> Message:
    """The marker standing in for messages left out of a context."""
    return Message(
        role="user",
        content=f"[loopline] {count} earlier messages (about {tokens} tokens) were left out "
        "to keep this context within its budget.",
    )


SUMMARY_INSTRUCTION = (
    "[loopline] The conversation above is too long to be shown whole from now on. Summarise "
    "it (with the summary it may already hold) for your own later use: keep every fact, "
    "number, tool result, decision and open question the task still needs; leave out what it "
    "does not. Answer with the summary alone."
)
"""The request that asks a run's model to summarise what its window leaves out."""


def summary_note(count: int, text: str) -> Message:
    """The note standing in for summarised messages."""
    return Message(
        role="user", content=f"[loopline] Summary of the {count} earlier messages: {text}"
    )


@dataclass(frozen=True)
class History:
    """What planning a window reads of a run: its messages and their token counts."""

    messages: Sequence[Message]
    tokens: Sequence[int]
    total: int
    """Sum of `tokens`, kept as the history grows."""
    head: int
    """Messages through the goal: always shown."""


@dataclass(frozen=True)
class Plan:
    """A window, and what it leaves out (to be summarised, when the profile says so)."""

    window: Window | None
    """None: the whole history fits, as it is."""
    left_out: tuple[int, int] = (0, 0)
    """The history's messages [from, to) the window leaves out (between head and start)."""


def plan(
    history: History, budget: int, fixed: int, summary: Message | None = None, summarized: int = 0
) -> Plan:
    """The window of `history` that fits `budget` tokens with `fixed` taken (tool schemas).

    With a `summary` of the messages before `summarized`, the summary stands in for those
    (and they are never shown again); without, a marker stands in for whatever is left out.
    """
    messages, tokens, head = history.messages, history.tokens, history.head
    if summary is None and fixed + history.total <= budget:
        return Plan(None)
    floor = max(head, summarized) if summary is not None else head
    head_tokens = sum(tokens[:head])
    latest = max(_latest_start(messages, head), floor)
    latest_tokens = sum(tokens[latest:])
    widest = summary or left_out_note(len(messages), history.total)
    room = budget - fixed - head_tokens - message_tokens(widest) - latest_tokens
    start = latest
    while start > floor:
        group = _group_start(messages, start, floor)
        cost = sum(tokens[group:start])
        if cost > room:
            break
        room -= cost
        start = group
    cuts = _cuts(messages, tokens, latest, len(messages), -room) if room < 0 else ()
    if summary is not None:
        return Plan(Window(head=head, start=start, note=summary, cuts=cuts), (floor, start))
    if start == head:  # no round left out: no marker
        return Plan(Window(head=head, start=head, cuts=cuts) if cuts else None)
    left = history.total - head_tokens - sum(tokens[start:])
    note = left_out_note(start - head, left)
    return Plan(Window(head=head, start=start, note=note, cuts=cuts), (head, start))


def to_summarise(
    history: History, left_out: tuple[int, int], budget: int, summary: Message | None
) -> Window:
    """The window a summary request holds: the head, the summary so far, and the messages
    newly left out, their longest tool results cut if all that does not fit `budget`."""
    first, end = left_out
    tokens = history.tokens
    size = sum(tokens[: history.head]) + sum(tokens[first:end])
    size += message_tokens(summary) if summary is not None else 0
    excess = size - budget
    cuts = _cuts(history.messages, tokens, first, end, excess) if excess > 0 else ()
    return Window(head=history.head, start=first, end=end, note=summary, cuts=cuts)


def _latest_start(messages: Sequence[Message], head: int) -> int:
    """Where the latest round begins: the last assistant message after the head, or the last
    message when there is none."""
    for i in range(len(messages) - 1, head - 1, -1):
        if messages[i].role == "assistant":
            return i
    return max(head, len(messages) - 1)


def _group_start(messages: Sequence[Message], end: int, floor: int) -> int:
    """The start of the group ending before `end`: a message and the tool results after it."""
    i = end - 1
    while i > floor and messages[i].role == "tool":
        i -= 1
    return i


def _cuts(
    messages: Sequence[Message], tokens: Sequence[int], first: int, end: int, excess: int
) -> tuple[Cut, ...]:
    """Show the longest tool results of messages [first, end) in part until `excess` tokens
    are gone; each keeps its first characters and a marker."""
    cuts: list[Cut] = []
    order = sorted(range(first, end), key=lambda j: -tokens[j])
    for i in order:
        if excess <= 0:
            break
        message = messages[i]
        body = tokens[i] - MESSAGE_OVERHEAD_TOKENS
        if message.role != "tool" or body <= 0:
            continue
        keep, shown = _keep(message, max(0, body - excess))
        if keep is not None:
            cuts.append(Cut(index=i, chars=keep))
            excess -= body - shown
    return tuple(sorted(cuts, key=lambda c: c.index))


ARTIFACT_MARGIN = 0.95
"""A stored output's text is not at hand: its first characters are taken in proportion to
its tokens, with this margin, as tokens do not spread evenly over a text."""


def _keep(message: Message, room: int) -> tuple[int | None, int]:
    """How many characters of a tool result to show in `room` tokens (marker included), and
    the tokens that then takes; None when it is shown whole."""
    stored = message.artifact
    if stored is not None:
        marker = count_tokens(artifact_marker(stored.ref, stored.chars, stored.chars))
        if stored.tokens <= room:
            return None, stored.tokens
        share = max(0, room - marker) / max(stored.tokens, 1) * ARTIFACT_MARGIN
        return int(stored.chars * share), room
    text = message.content
    if count_tokens(text) <= room:
        return None, count_tokens(text)
    low, high = 0, len(text)  # the longest prefix that fits, with its marker
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(text[:mid] + cut_marker(mid, len(text))) <= room:
            low = mid
        else:
            high = mid - 1
    return low, count_tokens(text[:low] + cut_marker(low, len(text)))
