"""Streamed text read back: deltas in any order and with repeats show each character once; a
retry that writes differently rewrites from where it differs."""

from __future__ import annotations

import uuid

from loopline_events import Envelope, ModelTextDelta, StreamedText, TextChunk


def delta(
    text: str, *, offset: int = 0, attempt: int = 1, step: int = 1
) -> Envelope[ModelTextDelta]:
    return Envelope.of(
        ModelTextDelta(model="m", attempt=attempt, offset=offset, text=text),
        run_id="run",
        producer="planner",
        seq=step,
        event_id=uuid.uuid4(),
    )


def test_deltas_extend_the_step_text() -> None:
    text = StreamedText()
    assert text.add(delta("It ")) == TextChunk("run", 1, "It ", 1, offset=0)
    assert text.add(delta("is 42", offset=3)) == TextChunk("run", 1, "is 42", 1, offset=3)
    assert text.text(1) == "It is 42"


def test_a_repeated_delta_shows_nothing() -> None:
    text = StreamedText()
    first = delta("It is")
    assert text.add(first) is not None
    assert text.add(first) is None
    assert text.add(delta("It", offset=0)) is None


def test_a_retry_repeating_what_was_shown_adds_only_what_is_new() -> None:
    text = StreamedText()
    text.add(delta("It is"))
    # The planner sends a retry's text from where readers are; a reader that got the whole
    # retry text anyway (another planner, after a crash) still shows it once.
    assert text.add(delta("It is 42.", attempt=2)) == TextChunk("run", 1, " 42.", 2, offset=5)
    assert text.text(1) == "It is 42."


def test_a_retry_writing_differently_rewrites_from_where_it_differs() -> None:
    text = StreamedText()
    text.add(delta("It is 41"))
    chunk = text.add(delta("2.", offset=6, attempt=2))
    assert chunk == TextChunk("run", 1, "2.", 2, rewrite=True, offset=6)
    assert text.text(1) == "It is 2."


def test_an_older_calls_text_is_ignored_once_a_newer_one_spoke() -> None:
    text = StreamedText()
    text.add(delta("Hello", attempt=2))
    assert text.add(delta("Bye", attempt=1)) is None
    assert text.text(1) == "Hello"


def test_steps_are_apart_and_a_gap_waits() -> None:
    text = StreamedText()
    text.add(delta("one", step=1))
    assert text.add(delta("two", step=2)) == TextChunk("run", 2, "two", 1, offset=0)
    assert text.add(delta("later", offset=10, step=2)) is None  # a delta lost before it
    assert (text.text(1), text.text(2)) == ("one", "two")
