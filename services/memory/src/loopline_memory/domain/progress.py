"""No-progress detection: a run repeating the same round, or swinging between two rounds.

A round is one step's tool calls (tool and arguments) with their results. Its fingerprint is a
hash of those, so the state keeps a short string per step rather than the rounds themselves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from loopline_events import Message, ToolCall

ROUNDS_KEPT = 2
"""Rounds a state keeps, per `no_progress_repeats`: enough for both checks below."""


def fingerprint(calls: Sequence[ToolCall], results: Sequence[Message]) -> str:
    """A short hash of a round: the calls, in the order asked, and what each returned.

    Call ids are left out: a model repeating itself gives each repetition a new id.
    """
    shape = [
        [
            call.tool,
            call.arguments,
            call.arguments_error,
            result.artifact.ref if result.artifact else result.content,
        ]
        for call, result in zip(calls, results, strict=True)
    ]
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stuck(rounds: Sequence[str], repeats: int) -> str | None:
    """Why the rounds show no progress, if they do.

    - the last `repeats` rounds are the same round;
    - or the last `2 * (repeats - 1)` rounds (at least four) alternate between two rounds.
    """
    if len(rounds) >= repeats and len(set(rounds[-repeats:])) == 1:
        return f"the same tool calls with the same arguments and results, {repeats} times in a row"
    window = max(4, 2 * (repeats - 1))
    if len(rounds) >= window:
        last = rounds[-window:]
        a, b = last[0], last[1]
        if a != b and all(r == (a if i % 2 == 0 else b) for i, r in enumerate(last)):
            return f"the same two rounds of tool calls in turn, {window} steps in a row"
    return None


def nudge_note(why: str) -> str:
    """The note telling the model it is going round in circles."""
    return (
        f"[loopline] No progress: {why}. Repeating it will not help. Try something different, "
        "or give your final answer with what you have; the run ends if this goes on."
    )
