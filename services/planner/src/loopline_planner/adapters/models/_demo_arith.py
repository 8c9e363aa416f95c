"""Arithmetic in plain text, for the demo model: expressions in a sentence, and chained steps
such as "then multiply the result by 3".

Pure text processing. Nothing is evaluated here: the demo model hands every expression to the
calculator tool, as a real model would.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_CANDIDATE = re.compile(r"[\d.\s+\-*/()]+")
"""Runs of characters an expression is made of; each is then trimmed and checked."""
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_THEN = re.compile(r"[,;]?\s*\bthen\b\s*", re.IGNORECASE)
_OPERATIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"\b(?:add|plus)\s+{_NUMBER}", re.IGNORECASE), "+"),
    (re.compile(rf"\b(?:subtract|minus)\s+{_NUMBER}", re.IGNORECASE), "-"),
    # A bounded gap ("multiply the result by 3"): an unbounded one scans to the end of the
    # text from every "multiply", and a hostile goal repeats the word ten thousand times.
    (re.compile(rf"\bmultipl(?:y|ied)\b.{{0,80}}?\bby\s+{_NUMBER}", re.IGNORECASE), "*"),
    (re.compile(rf"\btimes\s+{_NUMBER}", re.IGNORECASE), "*"),
    (re.compile(rf"\bdivided?\b.{{0,80}}?\bby\s+{_NUMBER}", re.IGNORECASE), "/"),
)
"""Chain steps the demo understands, each with the operator it means."""


@dataclass(frozen=True)
class Operation:
    """One chained step: apply `operator` with `operand` to the previous result."""

    operator: str
    operand: str

    def after(self, previous: str) -> str:
        """The expression of this step, given the previous result."""
        return f"{previous} {self.operator} {self.operand}"


@dataclass(frozen=True)
class Chain:
    """A goal like "Compute 17 + 25, then multiply the result by 3, then subtract 6"."""

    start: str
    operations: tuple[Operation, ...]


def find_expressions(text: str) -> tuple[str, ...]:
    """Every arithmetic expression in `text` with at least one operator, in order.

    "What is 12*7 + 3 and (100 - 58) / 2?" gives ("12*7 + 3", "(100 - 58) / 2"). Numbers
    inside URLs are not arithmetic, so URLs are left out.
    """
    # The multiplication and division signs, as people type them.
    text = _URL.sub(" ", text.replace("\u00d7", "*").replace("\u00f7", "/"))
    found = (_trim(m.group()) for m in _CANDIDATE.finditer(text))
    return tuple(e for e in found if e and _is_arithmetic(e))


def parse_chain(goal: str) -> Chain | None:
    """The chain in `goal`: an expression, then one or more operations; None if it is not one."""
    first, *rest = _THEN.split(goal)
    if not rest:
        return None
    starts = find_expressions(first)
    operations = [_operation(part) for part in rest]
    if not starts or any(op is None for op in operations):
        return None
    return Chain(start=starts[-1], operations=tuple(op for op in operations if op is not None))


def _operation(text: str) -> Operation | None:
    for pattern, operator in _OPERATIONS:
        match = pattern.search(text)
        if match:
            return Operation(operator=operator, operand=match.group(1))
    return None


def _trim(candidate: str) -> str:
    """`candidate` without the spaces, dots, operators and unpaired parentheses at its ends
    that belong to the sentence around it."""
    text = candidate.strip()
    while text:
        before = text
        text = text.strip(" \t\n.").rstrip("+-*/(")
        text = text.lstrip("+*/)")
        if text.startswith("(") and text.count("(") > text.count(")"):
            text = text[1:]
        if text.endswith(")") and text.count(")") > text.count("("):
            text = text[:-1]
        if text == before:
            break
    return text


def _is_arithmetic(expression: str) -> bool:
    """Whether `expression` parses as numbers joined by at least one binary operator."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # odd literals warn; they are rejected anyway
            tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    nodes = list(ast.walk(tree.body))
    allowed = (ast.BinOp, ast.UnaryOp, ast.Constant, ast.operator, ast.unaryop)
    numbers = all(isinstance(n.value, int | float) for n in nodes if isinstance(n, ast.Constant))
    return (
        numbers
        and all(isinstance(n, allowed) for n in nodes)
        and any(isinstance(n, ast.BinOp) for n in nodes)
    )
