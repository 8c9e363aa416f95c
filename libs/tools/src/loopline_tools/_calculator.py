"""`calculator`: arithmetic parsed with `ast` and evaluated by a small, bounded interpreter.

Never `eval`: only numbers, `+ - * / // % **`, unary signs and parentheses are understood,
and every step is bounded, so a hostile expression fails fast instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Callable

from loopline_events import ToolErrorKind
from pydantic import BaseModel, Field

from loopline_tools._core import ToolContext, ToolFailure
from loopline_tools._decorator import tool

Number = int | float

MAX_EXPRESSION_CHARS = 500
MAX_PARENS = 50
"""Parentheses nested deeper than this are not arithmetic anyone needs: an attack on the parser."""
MAX_DEPTH = 300
"""Depth of the syntax tree: enough for a sum of every number 500 characters can hold."""
MAX_EXPONENT = 1000
MAX_INT_BITS = 3322
"""About 1000 decimal digits."""

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.Invert: "~",
    ast.Not: "not",
}
"""Operators Python has and arithmetic does not, to name them in an error."""
_ALLOWED = "only numbers, + - * / // % **, and parentheses are allowed"


class CalculatorArgs(BaseModel):
    """Arguments of `calculator`."""

    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_CHARS,
        description="An arithmetic expression, e.g. `(17 + 25) * 3 - 6` or `2 ** 10 / 7`.",
    )


@tool(name="calculator")
async def calculator(args: CalculatorArgs, ctx: ToolContext) -> str:
    """Evaluate an arithmetic expression and return the result: numbers, + - * / // % **
    (power), unary minus and parentheses; no names or functions."""
    return format_number(evaluate(args.expression))


def evaluate(expression: str) -> Number:
    """The value of `expression`; `ToolFailure(INVALID_ARGUMENTS)` for anything else."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise _invalid(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    if _paren_depth(expression) > MAX_PARENS:
        raise _invalid(f"parentheses are nested deeper than {MAX_PARENS} levels")
    try:
        with warnings.catch_warnings():
            # Python warns about odd literals (`1 is 1`, `(1)(2)`); we reject those anyway.
            warnings.simplefilter("ignore")
            tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise _invalid(f"not a valid expression ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError):
        raise _invalid("not a valid expression") from None
    try:
        return _eval(tree.body, depth=0)
    except RecursionError:  # a last guard: the depth limit should come first
        raise _invalid("the expression is nested too deeply") from None


def format_number(value: Number) -> str:
    """Integers as integers, `21.0` as `21`, other floats to 12 significant digits."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return format(value, ".12g")


def _eval(node: ast.expr, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise _invalid(f"the expression nests deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant):
        return _constant(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _eval(node.operand, depth + 1)
        return _checked(-operand if isinstance(node.op, ast.USub) else +operand)
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, depth + 1)
        right = _eval(node.right, depth + 1)
        return _checked(_binary(node.op, left, right))
    raise _invalid(_describe(node))


def _constant(value: object) -> Number:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _checked(value)
    raise _invalid(f"{value!r} is not a number; {_ALLOWED}")


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
    try:
        if isinstance(op, ast.Pow):
            return _power(left, right)
        function = _BINARY.get(type(op))
        if function is None:
            raise _invalid(_describe_operator(op))
        return function(left, right)
    except ZeroDivisionError:
        raise _invalid("division by zero") from None
    except OverflowError:
        raise _invalid("the result is too large") from None


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise _invalid(f"exponents are limited to ±{MAX_EXPONENT}")
    # Predict the size before computing it: 10**1000 is fine, (10**999)**999 is not.
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if exact and (abs(int(base)).bit_length() - 1) * exponent > MAX_INT_BITS:
        raise _invalid("the result is too large")
    result = base**exponent
    if isinstance(result, complex):
        raise _invalid("the result is not a real number")
    return result


def _checked(value: Number) -> Number:
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise _invalid("the number is too large (more than about 1000 digits)")
    elif not math.isfinite(value):
        raise _invalid("the result is too large")
    return value


def _paren_depth(expression: str) -> int:
    depth = deepest = 0
    for char in expression:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _describe(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return f"unknown name {node.id!r}; {_ALLOWED}"
    if isinstance(node, ast.Call):
        return f"function calls are not allowed; {_ALLOWED}"
    if isinstance(node, ast.Attribute):
        return f"attributes are not allowed; {_ALLOWED}"
    if isinstance(node, ast.UnaryOp):
        return _describe_operator(node.op)
    return f"{type(node).__name__} expressions are not allowed; {_ALLOWED}"


def _describe_operator(op: ast.operator | ast.unaryop) -> str:
    return f"the operator {_SYMBOLS.get(type(op), type(op).__name__)} is not allowed; {_ALLOWED}"


def _invalid(message: str) -> ToolFailure:
    return ToolFailure(ToolErrorKind.INVALID_ARGUMENTS, message)
