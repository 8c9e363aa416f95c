"""Tool-call arguments nested too deep for Loopline's events are refused by the planner, with
the reason, instead of being written into a decision no service could read back."""

from __future__ import annotations

import json

import pytest
from loopline_events import Envelope, ModelDecided, decode_event, encode_event
from loopline_planner.adapters.models._openai_wire import MAX_ARGUMENTS_DEPTH, depth, parse_response
from loopline_testing.openai_server import tool_call_completion


def reply_with_arguments(arguments: object) -> bytes:
    completion = tool_call_completion([("calculator", json.dumps(arguments), "call_1")])
    return json.dumps(completion).encode()


def nested(levels: int) -> dict[str, object]:
    return {"expression": json.loads("[" * (levels - 1) + "]" * (levels - 1))}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7, 0), ({}, 1), ({"a": [1, 2]}, 2), ([[], [[{"b": None}]]], 4), (nested(5), 5)],
)
def test_depth_counts_nested_objects_and_arrays(value: object, expected: int) -> None:
    assert depth(value) == expected


def test_arguments_at_the_limit_are_kept_and_the_decision_reads_back() -> None:
    reply = parse_response(200, reply_with_arguments(nested(MAX_ARGUMENTS_DEPTH)))
    (call,) = reply.tool_calls
    assert call.arguments_error is None
    decided = Envelope.of(
        ModelDecided(model="m", tool_calls=reply.tool_calls), run_id="r", producer="planner"
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
    body = json.dumps(tool_call_completion([("calculator", text, "call_1")])).encode()
    (call,) = parse_response(200, body).tool_calls
    assert call.arguments == {}
    assert call.arguments_error is not None
    assert why in call.arguments_error
