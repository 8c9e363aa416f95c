"""`current_time`: the time now, in a named time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loopline_events import ToolErrorKind
from pydantic import BaseModel, Field

from loopline_tools._core import ToolContext, ToolFailure
from loopline_tools._decorator import tool


class CurrentTimeArgs(BaseModel):
    """Arguments of `current_time`."""

    timezone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        description="IANA time zone name, e.g. `UTC`, `Europe/Paris`, `America/New_York`.",
    )


@tool(name="current_time")
async def current_time(args: CurrentTimeArgs, ctx: ToolContext) -> str:
    """Return the current date and time (ISO 8601, with UTC offset) in an IANA time zone."""
    zone = _zone(args.timezone)
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({args.timezone}, {now:%A})"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # zoneinfo raises ValueError for malformed keys and OSError for e.g. a directory name.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        message = f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'"
        raise ToolFailure(ToolErrorKind.INVALID_ARGUMENTS, message) from None
