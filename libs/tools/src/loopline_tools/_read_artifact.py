"""`read_artifact`: read on in a stored output the context showed in part."""

from __future__ import annotations

from loopline_events import ToolErrorKind
from pydantic import BaseModel, Field

from loopline_tools._core import ToolContext, ToolFailure
from loopline_tools._decorator import tool

MAX_READ_CHARS = 200_000
"""Most characters one call returns."""


class ReadArtifactArgs(BaseModel):
    """Arguments of `read_artifact`."""

    ref: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="The artifact's reference, `sha256:` and 64 hex digits, as the context "
        "names it.",
    )
    offset: int = Field(default=0, ge=0, description="First character to read (from 0).")
    length: int = Field(
        default=50_000,
        ge=1,
        le=MAX_READ_CHARS,
        description=f"How many characters to read (at most {MAX_READ_CHARS}).",
    )


@tool(name="read_artifact")
async def read_artifact(args: ReadArtifactArgs, ctx: ToolContext) -> str:
    """Read part of a stored output (an artifact) that a context showed only in part: the
    characters from `offset`, up to `length` of them, and where to read on."""
    if ctx.artifacts is None:
        raise ToolFailure(ToolErrorKind.EXECUTION, "no artifact store is configured")
    stored = await ctx.artifacts.describe(args.ref)
    if stored is None:
        raise ToolFailure(ToolErrorKind.INVALID_ARGUMENTS, f"no artifact {args.ref}")
    if args.offset >= stored.chars:
        raise ToolFailure(
            ToolErrorKind.INVALID_ARGUMENTS,
            f"offset {args.offset} is past the end of {args.ref} ({stored.chars} characters)",
        )
    text = await ctx.artifacts.read(args.ref, args.offset, args.length)
    end = args.offset + len(text)
    where = f"characters {args.offset}-{end} of {stored.chars}"
    tail = "the end" if end >= stored.chars else f"read on from offset {end}"
    return f"{text}\n[loopline: {where} of artifact {args.ref}; {tail}]"
