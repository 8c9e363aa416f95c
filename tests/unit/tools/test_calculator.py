"""The `calculator` built-in: right answers, and clean refusals of hostile input."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopline_events import ToolErrorKind
from loopline_tools import BUILTIN_TOOLS, Tool, ToolContext, ToolFailure, run_tool

CTX = ToolContext(run_id="r", call_id="c")
CALCULATOR: Tool = next(t for t in BUILTIN_TOOLS if t.name == "calculator")


async def calculate(expression: str) -> str:
    outcome = await run_tool(CALCULATOR, {"expression": expression}, CTX)
    assert outcome.error is None, outcome.error
    assert outcome.output is not None
    return outcome.output


async def refusal(expression: str) -> str:
    """The message of the refusal: INVALID_ARGUMENTS, not retryable, at the first try. (How
    fast hostile input is refused is measured by `python -m bench hostile`, not timed here.)"""
    outcome = await run_tool(CALCULATOR, {"expression": expression}, CTX)
    assert outcome.error is not None, outcome.output
    assert outcome.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert not outcome.error.retryable
    assert outcome.attempts == 1
    return outcome.error.message


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("17 + 25", "42"),
        ("(17 + 25) * 3 - 6", "120"),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("42 / 2", "21"),
        ("7 / 2", "3.5"),
        ("1 / 3", "0.333333333333"),
        ("0.1 + 0.2", "0.3"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2 ** 3 ** 2", "512"),
        ("-3 ** 2", "-9"),
        ("(-3) ** 2", "9"),
        ("2 ** -2", "0.25"),
        ("-(-2)", "2"),
        ("+5", "5"),
        ("  1.5 * 4  ", "6"),
        ("1e3 + 1", "1001"),
        ("1_000_000 * 3", "3000000"),
        ("0x10 + 1", "17"),
        ("2.5 ** 2", "6.25"),
        ("1e20", "1e+20"),
        ("123456789 * 987654321", "121932631112635269"),
        ("10 ** 100", "1" + "0" * 100),
    ],
)
async def test_arithmetic(expression: str, expected: str) -> None:
    assert await calculate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("__import__('os')", "function calls are not allowed"),
        ("__import__('os').system('true')", "not allowed"),
        ("(1).__class__", "attributes are not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("'a' * 3", "'a' is not a number"),
        ("True + 1", "True is not a number"),
        ("1j * 2", "1j is not a number"),
        ("[1, 2]", "List expressions are not allowed"),
        ("1 if 1 else 2", "IfExp expressions are not allowed"),
        ("lambda: 1", "Lambda expressions are not allowed"),
        ("1 < 2", "Compare expressions are not allowed"),
        ("1 << 2", "the operator << is not allowed"),
        ("~1", "the operator ~ is not allowed"),
        ("1 +", "not a valid expression"),
        ("import os", "not a valid expression"),
        ("1\x00", "not a valid expression"),
        ("1 is 1", "Compare expressions are not allowed"),
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("5 % 0.0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("2 ** 10 ** 10", "exponents are limited"),
        ("9 ** 9 ** 9", "exponents are limited"),
        ("(10 ** 999) ** 999", "too large"),
        ("10 ** 999 * 10 ** 999", "too large"),
        ("2.5 ** 1000", "too large"),
        ("1e308 * 10", "too large"),
        ("1e999", "too large"),
        ("10 ** 400 / 3", "too large"),
        ("(-8) ** (1 / 3)", "not a real number"),
        ("9" * 400 + " ** 3", "too large"),
        ("(" * 60 + "1" + ")" * 60, "nested deeper than 50"),
        ("-" * 400 + "1", "nests deeper than 300"),
    ],
)
async def test_hostile_and_wrong_input_is_refused_cleanly(expression: str, says: str) -> None:
    assert says in await refusal(expression)


async def test_the_argument_length_is_capped_before_parsing() -> None:
    message = await refusal("(" * 10_000 + "1" + ")" * 10_000)
    assert "expression: String should have at most 500 characters" in message


async def test_the_evaluator_guards_itself_when_validation_is_bypassed() -> None:
    # A caller holding the raw function skips the arguments model and its length cap.
    for expression in ("(" * 10_000 + "1" + ")" * 10_000, "-" * 10_000 + "1"):
        args = CALCULATOR.args_model.model_construct(expression=expression)
        with pytest.raises(ToolFailure) as raised:
            await CALCULATOR.fn(args, CTX)
        assert raised.value.kind is ToolErrorKind.INVALID_ARGUMENTS


async def test_long_but_honest_input_is_fine() -> None:
    assert await calculate("+".join(["1"] * 250)) == "250"
    assert await calculate("9" * 500) == "9" * 500
    assert await calculate("(" * 50 + "1" + ")" * 50) == "1"


@dataclass(frozen=True)
class Expr:
    text: str
    value: int | None  # None: a division by zero somewhere


def combine(left: Expr, op: str, right: Expr) -> Expr:
    text = f"({left.text} {op} {right.text})"
    if left.value is None or right.value is None or (op in ("//", "%") and right.value == 0):
        return Expr(text, None)
    a, b = left.value, right.value
    value = {"+": a + b, "-": a - b, "*": a * b}.get(op)
    if value is None:
        value = a // b if op == "//" else a % b
    return Expr(text, value)


LEAVES = st.integers(-1000, 1000).map(lambda n: Expr(str(n) if n >= 0 else f"({n})", n))
EXPRESSIONS = st.recursive(
    LEAVES,
    lambda children: st.builds(
        combine, children, st.sampled_from(["+", "-", "*", "//", "%"]), children
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(EXPRESSIONS)
async def test_agrees_with_python_integer_arithmetic(expr: Expr) -> None:
    outcome = await run_tool(CALCULATOR, {"expression": expr.text}, CTX)
    if expr.value is None:
        assert outcome.error is not None
        assert outcome.error.message == "division by zero"
    else:
        assert outcome.output == str(expr.value)
