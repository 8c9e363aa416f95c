"""The shipped guards: `redact_secrets` masks API keys, bearer tokens and card numbers (by
Luhn) in arguments, outputs and, when asked, messages; `spend_limit` trips on a tool's
numeric argument over its maximum."""

from __future__ import annotations

from typing import Any

import pytest
from loopline_events import Message, ToolCall
from loopline_runtime import (
    PASS,
    GuardContext,
    RedactSecrets,
    Rewrite,
    SpendLimit,
    Trip,
    luhn_valid,
    mask_cards,
    redact,
)
from loopline_runtime._secrets import MASK
from loopline_runtime._shipped_guards import (
    RedactSecretsOptions,
    SpendLimitOptions,
    redact_secrets_in,
)

AT = GuardContext(run_id="run-1", tenant="acme", agent="payer")
VISA = "4111111111111111"
AMEX = "378282246310005"


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        (VISA, True),
        ("5555555555554444", True),
        (AMEX, True),
        ("6011111111111117", True),
        ("4111111111111112", False),
        ("1234567890123", False),
        ("411111111111", False),  # too short for a card
        ("41111111111111111111", False),  # too long
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"card {VISA}, thanks", f"card {MASK}, thanks"),
        ("4111 1111 1111 1111 exp 12/29", f"{MASK} exp 12/29"),
        ("4111-1111-1111-1111", MASK),
        ("3782 822463 10005", MASK),
        (f"id:{VISA}.", f"id:{MASK}."),
        ("4111111111111112", "4111111111111112"),  # fails Luhn: not a card
        ("4111 1111-1111 1111", "4111 1111-1111 1111"),  # mixed separators: not written so
        ("pi is 3.1415926535897932", "pi is 3.1415926535897932"),
        ("order 412345678901234567890123", "order 412345678901234567890123"),
        ("1 2 3 4 5 6 7 8 9 1 2 3 0", "1 2 3 4 5 6 7 8 9 1 2 3 0"),
    ],
)
def test_card_numbers_are_masked_only_when_written_like_one_and_luhn_valid(
    text: str, masked: str
) -> None:
    assert mask_cards(text) == masked


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk-ant-api03-zzzzzzzzzzzzzzzzzzzz",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_" + "a1" * 18,
        "xoxb-1234567890-abcdefghij",
        "AIza" + "B" * 35,
    ],
)
def test_api_key_shapes_are_masked(secret: str) -> None:
    assert redact_secrets_in(f"key={secret} ok") == f"key={MASK} ok"


def test_a_bearer_token_is_masked_and_the_word_kept() -> None:
    header = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert redact(header) == f"Authorization: Bearer {MASK}"
    assert redact("a bearer of good news") == "a bearer of good news"


def redacting(**options: bool) -> RedactSecrets:
    return RedactSecrets(RedactSecretsOptions(**options))


async def test_arguments_are_rewritten_deep_and_only_where_a_secret_is() -> None:
    arguments: dict[str, Any] = {
        "headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz012345"},
        "cards": [VISA, 4111111111111111, 42],
        "note": "pay the rent",
        "flag": True,
    }
    verdict = await redacting().before_tool(
        ToolCall(call_id="c", tool="t", arguments=arguments), "pure", AT
    )
    assert verdict == Rewrite(
        {
            "headers": {"Authorization": f"Bearer {MASK}"},
            "cards": [MASK, MASK, 42],
            "note": "pay the rent",
            "flag": True,
        }
    )
    assert arguments["cards"][0] == VISA  # the model's call is not changed in place
    plain = ToolCall(call_id="c", tool="t", arguments={"amount": 5, "to": ["bob"]})
    assert await redacting().before_tool(plain, "pure", AT) is PASS
    assert (
        await redacting(arguments=False).before_tool(
            ToolCall(call_id="c", tool="t", arguments={"card": VISA}), "pure", AT
        )
        is PASS
    )


async def test_outputs_are_rewritten() -> None:
    call = ToolCall(call_id="c", tool="t")
    out = f"found key AKIAIOSFODNN7EXAMPLE and card {VISA}"
    assert await redacting().after_tool(call, out, AT) == Rewrite(
        f"found key {MASK} and card {MASK}"
    )
    assert await redacting().after_tool(call, "nothing here", AT) is PASS
    assert await redacting(outputs=False).after_tool(call, out, AT) is PASS


async def test_messages_are_rewritten_only_when_asked() -> None:
    messages = (
        Message(role="system", content="Be brief."),
        Message(role="user", content=f"Pay with {VISA}"),
        Message(
            role="assistant",
            tool_calls=(ToolCall(call_id="c", tool="pay", arguments={"card": VISA}),),
        ),
    )
    assert await redacting().before_model(messages, AT) is PASS
    verdict = await redacting(messages=True).before_model(messages, AT)
    assert isinstance(verdict, Rewrite)
    system, user, assistant = verdict.value
    assert system is messages[0]
    assert user.content == f"Pay with {MASK}"
    assert assistant.tool_calls[0].arguments == {"card": MASK}
    assert assistant.tool_calls[0].call_id == "c"


def limit(**options: Any) -> SpendLimit:
    return SpendLimit(
        SpendLimitOptions.model_validate({"tool": "pay", "argument": "amount", **options})
    )


def pay(arguments: dict[str, Any], tool: str = "pay") -> ToolCall:
    return ToolCall(call_id="c", tool=tool, arguments=arguments)


@pytest.mark.parametrize("amount", [0, 99, 100, 100.0, "100", -5])
async def test_spend_within_the_limit_passes(amount: Any) -> None:
    assert await limit(max=100).before_tool(pay({"amount": amount}), "side_effect", AT) is PASS


async def test_spend_over_the_limit_trips_with_its_action() -> None:
    verdict = await limit(max=100).before_tool(pay({"amount": 250}), "side_effect", AT)
    assert verdict == Trip("pay: amount = 250 is over the limit of 100", "tell")
    verdict = await limit(max=100, action="fail").before_tool(pay({"amount": "100.5"}), "", AT)
    assert verdict == Trip("pay: amount = 100.5 is over the limit of 100", "fail")
    huge = 10**400  # past what a float holds: compared exactly
    assert isinstance(await limit(max=100).before_tool(pay({"amount": huge}), "", AT), Trip)


@pytest.mark.parametrize("amount", ["lots", None, True, [5], "nan", "inf", "1e400"])
async def test_an_amount_the_limit_cannot_read_trips(amount: Any) -> None:
    verdict = await limit(max=100).before_tool(pay({"amount": amount}), "", AT)
    assert isinstance(verdict, Trip)
    assert "not a number the spend limit can check" in verdict.reason


async def test_other_tools_and_calls_without_the_argument_pass() -> None:
    guard = limit(max=100)
    assert await guard.before_tool(pay({"amount": 1000}, tool="refund"), "", AT) is PASS
    assert await guard.before_tool(pay({"sum": 1000}), "", AT) is PASS


async def test_several_tools_and_a_nested_argument() -> None:
    guard = SpendLimit(
        SpendLimitOptions.model_validate(
            {"tool": ["pay", "transfer"], "argument": "payment.amount", "max": 10}
        )
    )
    over = {"payment": {"amount": 11}}
    assert isinstance(await guard.before_tool(pay(over, tool="transfer"), "", AT), Trip)
    assert await guard.before_tool(pay({"payment": {"amount": 9}}), "", AT) is PASS
    assert await guard.before_tool(pay({"payment": 11}), "", AT) is PASS


def test_spend_limit_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max"):
        SpendLimitOptions.model_validate({"tool": "pay", "argument": "amount", "max": "inf"})
    with pytest.raises(ValueError, match="tool"):
        SpendLimitOptions.model_validate({"tool": [], "argument": "amount", "max": 1})


async def test_a_large_output_is_redacted_too() -> None:
    call = ToolCall(call_id="c", tool="t")
    large = "x " * 200_000 + f"card {VISA} " + "y " * 200_000
    verdict = await redacting().after_tool(call, large, AT)
    assert isinstance(verdict, Rewrite)
    assert VISA not in verdict.value
    assert len(verdict.value) == len(large) - len(VISA) + len(MASK)
