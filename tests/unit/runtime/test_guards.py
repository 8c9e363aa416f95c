"""Guards run in a profile's order: a rewrite is what the next guard sees, the first trip
stops the rest, a guard that fails fails closed; a profile naming a guard wrongly stops the
service at start, saying which profile and which guard."""

from __future__ import annotations

import asyncio
import importlib.metadata
from typing import Any

import pytest
from loopline_events import GuardHook, Message, ModelDecided, ToolCall
from loopline_runtime import (
    PASS,
    Guard,
    GuardContext,
    GuardError,
    GuardOptions,
    Guards,
    Rewrite,
    Trip,
    Tripped,
    Verdict,
    installed_guards,
    load_guards,
    parse_profiles,
)
from loopline_runtime import _guards as guards_module
from loopline_runtime._guards import ENTRY_POINT_GROUP

AT = GuardContext(run_id="run-1", tenant="acme", agent="payer")
CALL = ToolCall(call_id="call_1", tool="pay", arguments={"amount": 5, "note": "rent"})


class Upper(Guard):
    """Rewrites every text it sees to upper case."""

    async def after_tool(self, call: ToolCall, output: str, at: GuardContext) -> Verdict[str]:
        return Rewrite(output.upper())

    async def before_tool(
        self, call: ToolCall, effect: str, at: GuardContext
    ) -> Verdict[dict[str, Any]]:
        return Rewrite(
            {k: v.upper() if isinstance(v, str) else v for k, v in call.arguments.items()}
        )


class Seen(Guard):
    """Trips on the text it is told to, and remembers what it saw."""

    def __init__(self, options: GuardOptions, word: str = "RENT", action: Any = "tell") -> None:
        super().__init__(options)
        self.word, self.action = word, action
        self.seen: list[Any] = []

    async def before_tool(
        self, call: ToolCall, effect: str, at: GuardContext
    ) -> Verdict[dict[str, Any]]:
        self.seen.append((dict(call.arguments), effect))
        return (
            Trip(f"{self.word} is not allowed", self.action)
            if self.word in str(call.arguments)
            else PASS
        )

    async def after_model(self, decision: ModelDecided, at: GuardContext) -> Verdict[ModelDecided]:
        self.seen.append(decision.final_answer)
        return Trip("no answers today", "fail") if decision.final_answer else PASS


class Broken(Guard):
    """Raises in every hook it has."""

    async def before_tool(
        self, call: ToolCall, effect: str, at: GuardContext
    ) -> Verdict[dict[str, Any]]:
        raise RuntimeError("lost its rules, key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx")

    async def before_model(
        self, messages: tuple[Message, ...], at: GuardContext
    ) -> Verdict[tuple[Message, ...]]:
        raise RuntimeError("lost its rules")


class Answers(Guard):
    """Answers with what it was built with, whatever that is."""

    def __init__(self, options: GuardOptions, answer: Any = None) -> None:
        super().__init__(options)
        self.answer = answer

    async def after_tool(self, call: ToolCall, output: str, at: GuardContext) -> Verdict[str]:
        answer: Verdict[str] = self.answer
        return answer


async def test_no_guards_pass_everything_unchanged() -> None:
    guards = Guards()
    assert not guards
    assert await guards.before_tool(CALL, "side_effect", AT) is CALL
    assert await guards.after_tool(CALL, "paid", AT) == "paid"
    messages = (Message(role="user", content="hi"),)
    assert await guards.before_model(messages, AT) is messages


async def test_a_rewrite_is_what_the_next_guard_sees_and_what_runs() -> None:
    seen = Seen(GuardOptions(), word="nothing")
    guards = Guards([("upper", Upper(GuardOptions())), ("seen", seen)])
    guarded = await guards.before_tool(CALL, "side_effect", AT)
    assert isinstance(guarded, ToolCall)
    assert guarded.arguments == {"amount": 5, "note": "RENT"}
    assert (guarded.call_id, guarded.tool) == (CALL.call_id, CALL.tool)
    assert seen.seen == [({"amount": 5, "note": "RENT"}, "side_effect")]
    assert CALL.arguments["note"] == "rent"  # the model's call itself is left alone
    assert await guards.after_tool(CALL, "paid", AT) == "PAID"


async def test_the_first_trip_stops_the_rest() -> None:
    first, second = Seen(GuardOptions(), action="fail"), Seen(GuardOptions())
    guards = Guards([("upper", Upper(GuardOptions())), ("first", first), ("second", second)])
    tripped = await guards.before_tool(CALL, "pure", AT)
    assert tripped == Tripped("first", GuardHook.BEFORE_TOOL, "RENT is not allowed", "fail")
    assert second.seen == []
    event = tripped.event(CALL)
    assert (event.guard, event.hook, event.action) == ("first", GuardHook.BEFORE_TOOL, "fail")
    assert (event.call_id, event.tool, event.reason) == ("call_1", "pay", "RENT is not allowed")


async def test_a_model_trip_names_no_call() -> None:
    guards = Guards([("seen", Seen(GuardOptions()))])
    decided = ModelDecided(model="demo", final_answer="42")
    tripped = await guards.after_model(decided, AT)
    assert isinstance(tripped, Tripped)
    event = tripped.event()
    assert (event.hook, event.action, event.call_id, event.tool) == (
        GuardHook.AFTER_MODEL,
        "fail",
        None,
        None,
    )
    calling = ModelDecided(model="demo", tool_calls=(CALL,))
    assert await guards.after_model(calling, AT) is calling


async def test_a_guard_that_raises_fails_closed_and_its_message_is_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guards = Guards([("broken", Broken(GuardOptions()))])
    tripped = await guards.before_tool(CALL, "pure", AT)
    assert isinstance(tripped, Tripped)
    # A tool call fails (the model may do without it); a model step cannot go on unguarded.
    assert (tripped.guard, tripped.action) == ("broken", "tell")
    assert "guard 'broken' failed" in tripped.reason
    assert "lost its rules" in tripped.reason
    assert "sk-proj" not in tripped.reason
    assert "guard broken failed in before_tool" in caplog.text
    stopped = await guards.before_model((Message(role="user", content="hi"),), AT)
    assert isinstance(stopped, Tripped)
    assert (stopped.hook, stopped.action) == (GuardHook.BEFORE_MODEL, "fail")


@pytest.mark.parametrize(
    "answer",
    [None, "a string", Trip("bad action", "shrug")],  # type: ignore[arg-type]
)
async def test_a_guard_answering_something_else_fails_closed(answer: Any) -> None:
    tripped = await Guards([("odd", Answers(GuardOptions(), answer))]).after_tool(CALL, "x", AT)
    assert isinstance(tripped, Tripped)
    assert tripped.hook is GuardHook.AFTER_TOOL
    assert "guard 'odd' failed" in tripped.reason


async def test_a_guard_that_hangs_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Hangs(Guard):
        async def after_tool(self, call: ToolCall, output: str, at: GuardContext) -> Verdict[str]:
            await asyncio.sleep(60)
            return PASS

    monkeypatch.setattr(guards_module, "HOOK_TIMEOUT_S", 0.05)
    tripped = await Guards([("slow", Hangs(GuardOptions()))]).after_tool(CALL, "x", AT)
    assert isinstance(tripped, Tripped)
    assert "took too long" in tripped.reason


AGENTS = """
[agents.payer]
system_prompt = "Pay."
tools = ["pay"]
[agents.payer.guards.redact_secrets]
[agents.payer.guards.spend_limit]
tool = "pay"
argument = "amount"
max = 100
action = "fail"

[agents.plain]
system_prompt = "Talk."
"""


def test_profiles_get_their_guards_in_order_with_their_options() -> None:
    built = load_guards(parse_profiles(AGENTS))
    assert built["payer"].names() == ["redact_secrets", "spend_limit"]
    assert not built["plain"]
    _, limit = built["payer"].guards[1]
    assert limit.options.model_dump() == {
        "tool": ("pay",),
        "argument": "amount",
        "max": 100.0,
        "action": "fail",
    }


def test_the_shipped_guards_are_installed_entry_points() -> None:
    assert {"redact_secrets", "spend_limit"} <= set(installed_guards())


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            "[agents.payer.guards.no_such_guard]\n",
            "agent 'payer', guard 'no_such_guard': no installed package offers it "
            "(installed guards: redact_secrets, spend_limit",
        ),
        (
            '[agents.payer.guards.spend_limit]\ntool = "pay"\nargument = "amount"\nmax = "lots"\n',
            "agent 'payer', guard 'spend_limit': option max: Input should be a valid number",
        ),
        (
            '[agents.payer.guards.spend_limit]\ntool = "pay"\nmax = 5\n',
            "agent 'payer', guard 'spend_limit': option argument: Field required",
        ),
        (
            '[agents.payer.guards.spend_limit]\ntool = "pay"\nargument = "a"\nmax = 5\n'
            'action = "shout"\n',
            "option action: Input should be 'tell' or 'fail'",
        ),
        (
            "[agents.payer.guards.redact_secrets]\nmessage = true\n",
            "agent 'payer', guard 'redact_secrets': option message: Extra inputs are not permitted",
        ),
    ],
)
def test_a_wrong_guard_is_an_error_naming_the_profile_and_the_guard(
    table: str, expected: str
) -> None:
    profiles = parse_profiles('[agents.payer]\nsystem_prompt = "Pay."\n' + table)
    with pytest.raises(GuardError) as refused:
        load_guards(profiles, source="agents.toml")
    assert str(refused.value).startswith("agents.toml: ")
    assert expected in str(refused.value)


def test_every_wrong_guard_is_named_at_once_and_a_broken_one_too() -> None:
    def broken() -> type[Guard]:
        raise GuardError("guard 'broken' (acme.guards:Broken) cannot be loaded: ImportError()")

    profiles = parse_profiles(
        '[agents.a]\nsystem_prompt = "s"\n[agents.a.guards.gone]\n'
        '[agents.b]\nsystem_prompt = "s"\n[agents.b.guards.broken]\n'
    )
    with pytest.raises(GuardError) as refused:
        load_guards(profiles, {"broken": broken})
    message = str(refused.value)
    assert "agent 'a', guard 'gone': no installed package offers it (installed guards: broken)" in (
        message
    )
    assert "agent 'b', guard 'broken': guard 'broken' (acme.guards:Broken) cannot be loaded" in (
        message
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme_no_such_module:Guard", "cannot be loaded: ModuleNotFoundError"),
        ("loopline_runtime:redact", "is not a Guard subclass"),
    ],
)
def test_an_entry_point_that_is_no_guard_is_named(value: str, expected: str) -> None:
    point = importlib.metadata.EntryPoint(name="odd", value=value, group=ENTRY_POINT_GROUP)
    profiles = parse_profiles('[agents.a]\nsystem_prompt = "s"\n[agents.a.guards.odd]\n')
    with pytest.raises(GuardError) as refused:
        load_guards(profiles, {"odd": guards_module._loader(point, ENTRY_POINT_GROUP)})
    assert f"agent 'a', guard 'odd': guard 'odd' ({value}, group 'loopline.guards')" in str(
        refused.value
    )
    assert expected in str(refused.value)
