"""`long_text`: a pure tool that returns a long, known text, for tests of large outputs.

The text is a function of its arguments alone: line `i` of text `seed` reads
`<seed> line <i>: ` and then filler, so a reader can tell where any part of it comes from.
"""

from __future__ import annotations

from loopline_tools import Effect, ToolContext, tool
from pydantic import BaseModel, Field

MAX_CHARS = 64 * 1024 * 1024


class LongTextArgs(BaseModel):
    """Arguments of `long_text`."""

    chars: int = Field(ge=1, le=MAX_CHARS, description="How long the text is, in characters.")
    seed: str = Field(default="text", min_length=1, max_length=32, description="Its name.")


def long_text_of(chars: int, seed: str = "text") -> str:
    """The text `long_text` returns for these arguments."""
    filler = "the quick brown fox jumps over the lazy dog; " * 3
    lines: list[str] = []
    size, i = 0, 0
    while size < chars:
        line = f"{seed} line {i}: {filler}\n"
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines)[:chars]


@tool(name="long_text", effect=Effect.PURE, timeout_s=60)
async def long_text(args: LongTextArgs, ctx: ToolContext) -> str:
    """Return a long text of `chars` characters (for tests of large outputs)."""
    return long_text_of(args.chars, args.seed)
