"""The `current_time` built-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from loopline_events import ToolErrorKind
from loopline_tools import BUILTIN_TOOLS, Effect, Tool, ToolContext, run_tool

CTX = ToolContext(run_id="r", call_id="c")
CURRENT_TIME: Tool = next(t for t in BUILTIN_TOOLS if t.name == "current_time")


async def now_in(arguments: dict[str, str]) -> tuple[datetime, str]:
    outcome = await run_tool(CURRENT_TIME, arguments, CTX)
    assert outcome.output is not None, outcome.error
    stamp, _, rest = outcome.output.partition(" ")
    return datetime.fromisoformat(stamp), rest


async def test_utc_by_default() -> None:
    now, rest = await now_in({})
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    assert rest.startswith("(UTC, ")


@pytest.mark.parametrize("zone", ["Europe/Paris", "Asia/Kolkata", "America/New_York"])
async def test_a_named_zone_carries_its_offset(zone: str) -> None:
    now, rest = await now_in({"timezone": zone})
    assert now.utcoffset() == datetime.now(ZoneInfo(zone)).utcoffset()
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
    assert rest == f"({zone}, {now:%A})"


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "utc", "../../etc/passwd", "/etc/localtime", "Europe"]
)
async def test_an_unknown_zone_is_invalid_arguments(zone: str) -> None:
    outcome = await run_tool(CURRENT_TIME, {"timezone": zone}, CTX)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert f"unknown time zone {zone!r}" in outcome.error.message


def test_it_is_a_pure_tool_with_a_schema() -> None:
    assert CURRENT_TIME.effect is Effect.PURE
    assert CURRENT_TIME.spec().parameters["properties"]["timezone"]["default"] == "UTC"
