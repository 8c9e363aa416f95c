"""From a run's history and a context's window to the messages a model request holds.

The one definition both sides use: memory plans a window (and estimates its size with these
markers), the planner builds the request from it. Pure: artifacts' text is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from loopline_events._steps import ContextAssembled, Message, Window


class HistoryGapError(LookupError):
    """A held history shorter than the context builds on: it must be rebuilt first."""


def extended(history: tuple[Message, ...], context: ContextAssembled) -> tuple[Message, ...]:
    """A run's history with `context`'s messages, which follow its first `base` ones; a
    context seen again (redelivered) gives the same history."""
    if len(history) < context.base:
        raise HistoryGapError(
            f"holds {len(history)} messages; the context builds on {context.base}"
        )
    if len(history) == context.base:
        return (*history, *context.appended)
    return (*history[: context.base], *context.appended)


def cut_marker(kept: int, total: int) -> str:
    """What follows a text shown in part."""
    return f"\n[loopline: cut to fit the context: {kept} of {total} characters shown]"


def artifact_marker(ref: str, kept: int, total: int) -> str:
    """What follows a stored output shown in part: how to read the rest."""
    return (
        f"\n[loopline: {kept} of {total} characters shown; the whole output is artifact {ref}: "
        "read_artifact(ref, offset, length) reads the rest]"
    )


def shown_messages(
    history: Sequence[Message], window: Window | None
) -> Iterator[tuple[int | None, Message]]:
    """The messages a request holds, in order, with their index in the history (None for
    the window's note): the head, the note, then the messages from the window's start."""
    if window is None:
        yield from enumerate(history)
        return
    yield from ((i, history[i]) for i in range(min(window.head, len(history))))
    if window.note is not None:
        yield None, window.note
    end = len(history) if window.end is None else min(window.end, len(history))
    yield from ((i, history[i]) for i in range(max(window.start, window.head), end))


def request_messages(
    history: Sequence[Message], window: Window | None, artifacts: Mapping[str, str]
) -> list[Message]:
    """The model request's messages: the history through the window, each stored output read
    (`artifacts` maps a reference to its text, or to at least as much of it as is shown)."""
    cuts = {c.index: c.chars for c in window.cuts} if window is not None else {}
    out: list[Message] = []
    for index, message in shown_messages(history, window):
        keep = cuts.get(index) if index is not None else None
        out.append(_shown(message, keep, artifacts))
    return out


def _shown(message: Message, keep: int | None, artifacts: Mapping[str, str]) -> Message:
    stored = message.artifact
    if stored is None:
        if keep is None:
            return message
        text = message.content
        content = text[:keep] + cut_marker(keep, len(text))
    else:
        text = artifacts[stored.ref]
        if keep is None:
            content = text
        else:
            content = text[:keep] + artifact_marker(stored.ref, keep, stored.chars)
    return message.model_copy(update={"content": content, "artifact": None})
