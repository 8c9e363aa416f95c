"""The demo model's side-effect goal ("Record N side effects"), which the chaos suite plays:
one `record_effect` call per step, each labelled by its number, then the answer."""

from __future__ import annotations

from loopline_events import Message
from loopline_planner.adapters.models import DemoModel, ModelReply, ModelRequest


async def play(goal: str, results: list[str]) -> list[ModelReply]:
    """The model's replies when its calls get `results` in turn (then it must answer)."""
    messages = [Message(role="system", content="Record."), Message(role="user", content=goal)]
    replies = []
    for result in [*results, None]:
        reply = await DemoModel().complete(
            ModelRequest(agent="effects", model="demo", messages=tuple(messages))
        )
        replies.append(reply)
        if reply.final_answer is not None or result is None:
            return replies
        messages.append(Message(role="assistant", tool_calls=reply.tool_calls))
        messages += [
            Message(role="tool", content=result, tool_call_id=c.call_id) for c in reply.tool_calls
        ]
    return replies


async def test_each_step_records_one_numbered_effect_then_it_answers() -> None:
    replies = await play("Record 3 side effects", ["recorded effect 1"] * 3)
    calls = [[(c.call_id, c.tool, c.arguments) for c in r.tool_calls] for r in replies]
    assert calls == [
        [("call_1_0", "record_effect", {"label": "effect 1"})],
        [("call_2_0", "record_effect", {"label": "effect 2"})],
        [("call_3_0", "record_effect", {"label": "effect 3"})],
        [],
    ]
    assert replies[-1].final_answer == "I recorded 3 side effects."


async def test_a_failed_effect_ends_the_run_with_what_failed() -> None:
    failure = "error (unknown_outcome): record_effect was started earlier but never finished"
    replies = await play("record 4 side-effects", ["recorded effect 1", failure])
    assert len(replies) == 3
    answer = replies[-1].final_answer
    assert answer is not None
    assert answer.startswith("I could not finish, because record_effect failed")
    assert "unknown_outcome" in answer


async def test_the_same_step_gives_the_same_call_so_a_redelivery_is_recognised() -> None:
    first = await play("Record 2 side effects", ["recorded effect 1"])
    again = await play("Record 2 side effects", ["recorded effect 1"])
    assert first == again
