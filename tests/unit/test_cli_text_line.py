"""How `submit --wait` and `tail` print a step's text as it comes: on the step's own line,
ended when anything else is printed, a retried call's rewrite marked."""

from __future__ import annotations

import json

import pytest
from loopline_events import Envelope, ModelDecided, TextChunk

from loopline.cli._render import TextLine


def decided() -> Envelope[ModelDecided]:
    return Envelope.of(
        ModelDecided(model="openai:gpt-4o", final_answer="It is 42."),
        run_id="run-12345678",
        producer="planner",
        seq=1,
    )


def test_text_is_appended_to_its_step_line_until_an_event_ends_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = TextLine()
    line.text(TextChunk("run-12345678", 1, "It is "), as_json=False)
    line.text(TextChunk("run-12345678", 1, "42."), as_json=False)
    line.event(decided(), as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("step 1")
    assert lines[0].endswith("It is 42.")
    assert "decision" in lines[1]


def test_several_runs_get_a_line_each_with_their_run(capsys: pytest.CaptureFixture[str]) -> None:
    line = TextLine(show_run=True)
    line.text(TextChunk("run-aaaaaaaa", 1, "one"), as_json=False)
    line.text(TextChunk("run-bbbbbbbb", 3, "two"), as_json=False)
    line.text(TextChunk("run-bbbbbbbb", 3, " more", rewrite=True, offset=3), as_json=False)
    line.end()
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("run-aaaa step 1")
    assert first.endswith("one")
    assert second.startswith("run-bbbb step 3")
    assert "retried" in second
    assert second.endswith(" more")


def test_with_json_each_chunk_is_a_line_of_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    line = TextLine()
    line.text(TextChunk("run-1", 2, "It is", attempt=2), as_json=True)
    line.event(decided(), as_json=True)
    chunk, event = (json.loads(text) for text in capsys.readouterr().out.splitlines())
    assert chunk == {
        "type": "TextChunk",
        "run_id": "run-1",
        "step": 2,
        "text": "It is",
        "attempt": 2,
        "rewrite": False,
        "offset": 0,
    }
    assert event["type"] == "ModelDecided"
