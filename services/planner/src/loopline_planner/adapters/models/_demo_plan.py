"""What the demo model decides, from the conversation alone: pure and deterministic.

The first user message is the goal; each assistant message with tool calls is a round the
model already played, and the tool messages answering those calls are its results. `plan`
reads that and returns the next calls, or the final answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loopline_events import Message, ToolCall

from loopline_planner.adapters.models._demo_arith import find_expressions, parse_chain

NOTHING_TO_DO = (
    "I am Loopline's demo model: I follow a few kinds of goals, without any real model. "
    "Try arithmetic ('What is 12*7 + 3?'), a chain ('Compute 17 + 25, then multiply the "
    "result by 3'), 'Count to 5', 'What time is it?', 'Fetch https://example.com', "
    "'Remember that ...' or 'Recall ...'. For anything else, use a profile with an OpenAI model."
)


@dataclass(frozen=True)
class Call:
    """A tool the demo model wants to call."""

    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Round:
    """A step already played: the calls made and what each returned (None: no result yet)."""

    calls: tuple[Call | ToolCall, ...]
    results: tuple[str | None, ...]


@dataclass(frozen=True)
class Plan:
    """The decision: calls to make now, or the final answer."""

    calls: tuple[Call, ...] = ()
    answer: str | None = None


GOAL_READ_CHARS = 4_000
"""How much of a goal the demo model reads."""
SUMMARY_ASKED = "[loopline] The conversation above is too long"
"""How memory's request for a summary begins (a profile that compacts by summary)."""


def plan(messages: Sequence[Message]) -> Plan:
    """The demo model's next decision for the conversation `messages`."""
    if messages and messages[-1].content.startswith(SUMMARY_ASKED):
        return _summary(messages[:-1])
    # The demo reads a goal's first few thousand characters, as a small model's window would:
    # its cost stays bounded whatever a goal holds.
    goal = next((m.content for m in messages if m.role == "user"), "")[:GOAL_READ_CHARS]
    rounds = read_rounds(messages)
    failed = _failure_answer(rounds)
    if failed is not None:
        return failed
    for strategy in _STRATEGIES:
        decided = strategy(goal, rounds)
        if decided is not None:
            return decided
    return Plan(answer=NOTHING_TO_DO)


def _summary(messages: Sequence[Message]) -> Plan:
    """A summary of the conversation: each tool call it shows, with its result."""
    rounds = read_rounds(messages)
    done = [
        f"{call.tool}({', '.join(f'{k}={v}' for k, v in call.arguments.items())}) -> {result}"
        for r in rounds
        for call, result in zip(r.calls, r.results, strict=True)
    ]
    return Plan(answer="Steps so far: " + ("; ".join(done) if done else "none") + ".")


def read_rounds(messages: Sequence[Message]) -> tuple[Round, ...]:
    """The rounds of tool calls in `messages`, each with its results."""
    results = {m.tool_call_id: m.content for m in messages if m.role == "tool"}
    return tuple(
        Round(
            calls=m.tool_calls,  # read as they are: the demo re-reads them at every step
            results=tuple(results.get(c.call_id) for c in m.tool_calls),
        )
        for m in messages
        if m.role == "assistant" and m.tool_calls
    )


def is_failure(result: str | None) -> bool:
    """Whether a tool result reports a failure (memory writes them as `error (kind): ...`)."""
    return result is None or result.lstrip().lower().startswith("error")


def _failure_answer(rounds: Sequence[Round]) -> Plan | None:
    """When a call failed, answer with what there is instead of calling again: trying the
    same call would fail the same way, and a demo that loops shows nothing."""
    failed = [
        (call, result)
        for r in rounds
        for call, result in zip(r.calls, r.results, strict=True)
        if is_failure(result)
    ]
    if not failed:
        return None
    reasons = "; ".join(
        f"{c.tool} failed: {(result or 'no result').rstrip('. ')}" for c, result in failed
    )
    got = [
        f"{_show(c)} gave {result}"
        for r in rounds
        for c, result in zip(r.calls, r.results, strict=True)
        if not is_failure(result)
    ]
    answer = f"I could not finish, because {reasons}."
    if got:
        answer += " What I did get: " + "; ".join(got) + "."
    return Plan(answer=answer)


def _show(call: Call | ToolCall) -> str:
    if call.tool == "calculator":
        return str(call.arguments.get("expression", ""))
    return call.tool


def _chain(goal: str, rounds: Sequence[Round]) -> Plan | None:
    chain = parse_chain(goal)
    if chain is None:
        return None
    if not rounds:
        return Plan(calls=(_calculate(chain.start),))
    previous = rounds[-1].results[-1] or ""
    if not _is_number(previous):
        return Plan(answer=f"I expected a number from the calculator, but it said {previous!r}.")
    if len(rounds) <= len(chain.operations):
        return Plan(calls=(_calculate(chain.operations[len(rounds) - 1].after(previous)),))
    return Plan(answer=_chain_answer(rounds))


def _chain_answer(rounds: Sequence[Round]) -> str:
    steps = ", ".join(f"{_show(r.calls[0])} = {r.results[0]}" for r in rounds)
    return f"{steps}. The answer is {rounds[-1].results[0]}."


_COUNT = re.compile(r"\bcount\s+(?:from\s+1\s+)?(?:up\s+)?to\s+(\d+)", re.IGNORECASE)


def _count(goal: str, rounds: Sequence[Round]) -> Plan | None:
    """One calculator call per number: slow on purpose, to drive a run past its step budget."""
    match = _COUNT.search(goal)
    if match is None:
        return None
    target = int(match.group(1))
    current = (rounds[-1].results[-1] or "") if rounds else "0"
    if not current.isdigit():
        return Plan(answer=f"I lost count: the calculator said {current!r}.")
    if int(current) >= target:
        return Plan(answer=f"I counted to {target}: {target}.")
    return Plan(calls=(_calculate(f"{current} + 1"),))


_EFFECTS = re.compile(r"\brecord\s+(\d+)\s+side[\s-]+effects?\b", re.IGNORECASE)


def _effects(goal: str, rounds: Sequence[Round]) -> Plan | None:
    """One `record_effect` call per step, labelled by its number, then the answer: a run of
    several steps whose every call has a side effect (the test tool that counts them)."""
    match = _EFFECTS.search(goal)
    if match is None:
        return None
    target = int(match.group(1))
    if len(rounds) >= target:
        return Plan(answer=f"I recorded {target} side effects.")
    return Plan(calls=(Call("record_effect", {"label": f"effect {len(rounds) + 1}"}),))


_TIME = re.compile(r"what time|current time|time is it", re.IGNORECASE)


def _lookups(goal: str, rounds: Sequence[Round]) -> Plan | None:
    """Arithmetic and the time: every one at once, as parallel calls, then one answer."""
    calls = [_calculate(e) for e in find_expressions(goal)]
    if _TIME.search(goal):
        calls.append(Call("current_time", {"timezone": "UTC"}))
    if not calls:
        return None
    if not rounds:
        return Plan(calls=tuple(calls))
    parts = [
        f"{_show(c)} = {result}" if c.tool == "calculator" else f"the current time is {result}"
        for c, result in zip(rounds[0].calls, rounds[0].results, strict=True)
    ]
    return Plan(answer=_sentence("; ".join(parts)))


_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_FETCH = re.compile(r"\b(?:fetch|get|read)\b", re.IGNORECASE)
_FIRST_LINES = 3
_ANSWER_CHARS = 300


def _fetch(goal: str, rounds: Sequence[Round]) -> Plan | None:
    url = _URL.search(goal)
    if url is None or not _FETCH.search(goal):
        return None
    address = url.group().rstrip(".,;:!?)]}")
    if not rounds:
        return Plan(calls=(Call("http_get", {"url": address}),))
    lines = [line.strip() for line in (rounds[0].results[0] or "").splitlines() if line.strip()]
    start = " / ".join(lines[:_FIRST_LINES])
    if len(start) > _ANSWER_CHARS:
        start = start[: _ANSWER_CHARS - 1] + "…"
    return Plan(answer=f"{address} starts with: {start or '(nothing)'}")


_RECALL = re.compile(
    r"\b(?:recall|what do you remember about)\s*:?\s*(?P<query>.+)", re.IGNORECASE | re.DOTALL
)
_REMEMBER = re.compile(r"\bremember(?:\s+that\b|\s*:)\s*(?P<fact>.+)", re.IGNORECASE | re.DOTALL)


def _recall(goal: str, rounds: Sequence[Round]) -> Plan | None:
    match = _RECALL.search(goal)
    if match is None:
        return None
    query = _clause(match.group("query"))
    if not rounds:
        return Plan(calls=(Call("recall", {"query": query}),))
    found = (rounds[0].results[0] or "").strip()
    return Plan(answer=f"About {query}, I remember: {found or 'nothing'}")


def _remember(goal: str, rounds: Sequence[Round]) -> Plan | None:
    match = _REMEMBER.search(goal)
    if match is None:
        return None
    fact = _clause(match.group("fact"))
    if not rounds:
        return Plan(calls=(Call("remember", {"fact": fact}),))
    stored = (rounds[0].results[0] or "").strip()
    return Plan(answer=f"I will remember that {fact}." + (f" ({stored})" if stored else ""))


_DELEGATE = re.compile(
    r"^\s*ask\s+(?P<agent>[A-Za-z0-9_.-]{1,128})\s*(?::|to\b)\s*(?P<goal>\S.*)",
    re.IGNORECASE | re.DOTALL,
)
_AND_ASK = re.compile(r";\s*(?:and\s+)?(?=ask\s)", re.IGNORECASE)


def _delegate(goal: str, rounds: Sequence[Round]) -> Plan | None:
    """ "Ask AGENT: GOAL" hands GOAL to that agent (a sub-task, its own run), then answers
    with what it said; "Ask A: ...; ask B: ..." hands out both at once."""
    asks = [_DELEGATE.match(part) for part in _AND_ASK.split(goal)]
    if not asks or any(a is None for a in asks):
        return None
    pairs = [(a.group("agent"), a.group("goal").strip()) for a in asks if a is not None]
    if not rounds:
        return Plan(calls=tuple(Call("delegate", {"agent": n, "goal": g}) for n, g in pairs))
    said = rounds[0].results
    return Plan(
        answer="; ".join(
            f"{name} answered: {(result or '').strip()}"
            for (name, _), result in zip(pairs, said, strict=False)
        )
    )


_STRATEGIES: tuple[Callable[[str, Sequence[Round]], Plan | None], ...] = (
    _delegate,
    _chain,
    _count,
    _effects,
    _recall,
    _remember,
    _lookups,
    _fetch,
)
"""Tried in order; the first that recognises the goal decides. A sub-task comes first (its
goal may hold anything), memory goals before arithmetic, so that "remember that the build
takes 3-4 minutes" is remembered, not computed."""


def _calculate(expression: str) -> Call:
    return Call("calculator", {"expression": expression})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _clause(text: str) -> str:
    return text.strip().rstrip(".?!").strip()


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."
