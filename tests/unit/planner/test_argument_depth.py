"""Tool-call arguments nested too deep for Loopline's events are refused by the planner, with
the reason, instead of being written into a decision no service could read back."""

from __future__ import annotations

import json

import pytest
from loopline_events import Envelope, ModelDecided, decode_event, encode_event
from loopline_planner.adapters.models._arguments import MAX_ARGUMENTS_DEPTH, depth, tool_call


def nested(levels: int) -> dict[str, object]:
    return {"expression": json.loads("[" * (levels - 1) + "]" * (levels - 1))}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7, 0), ({}, 1), ({"a": [1, 2]}, 2), ([[], [[{"b": None}]]], 4), (nested(5), 5)],
)
def test_depth_counts_nested_objects_and_arrays(value: object, expected: int) -> None:
    assert depth(value) == expected


def test_arguments_at_the_limit_are_kept_and_the_decision_reads_back() -> None:
    call = tool_call("call_1", "calculator", json.dumps(nested(MAX_ARGUMENTS_DEPTH)))
    assert call.arguments_error is None
    decided = Envelope.of(
        ModelDecided(model="m", tool_calls=(call,)), run_id="r", producer="planner"
    )
    assert decode_event(encode_event(decided)) == decided


@pytest.mark.parametrize(
    ("levels", "why"),
    [
        (MAX_ARGUMENTS_DEPTH, f"nested deeper than {MAX_ARGUMENTS_DEPTH} levels"),
        (150, f"nested deeper than {MAX_ARGUMENTS_DEPTH} levels"),
        (5_000, "not a JSON object"),  # past what the JSON parser takes at all
    ],
)
def test_arguments_nested_deeper_are_refused_with_the_reason(levels: int, why: str) -> None:
    text = '{"x": ' + "[" * levels + "]" * levels + "}"  # one level more than `levels`
    call = tool_call("call_1", "calculator", text)
    assert call.arguments == {}
    assert call.arguments_error is not None
    assert why in call.arguments_error


def test_arguments_given_as_an_object_are_taken_as_they_are() -> None:
    # Anthropic sends tool input as JSON pieces; some OpenAI-compatible servers as an object.
    call = tool_call("toolu_1", "calculator", {"expression": "2+3"})
    assert (call.arguments, call.arguments_error) == ({"expression": "2+3"}, None)
    assert tool_call("c", "calculator", "").arguments == {}
    listed = tool_call("c", "calculator", "[1, 2]")
    assert listed.arguments_error is not None
    assert "not a JSON object" in listed.arguments_error
