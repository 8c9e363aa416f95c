"""Counting tokens the way the common models do: a real BPE tokenizer that works offline.

The `o200k_base` encoding (OpenAI's current models; close enough for others' windows) ships
inside the `bpe-openai` package, so counting needs no download and gives the same number on
every machine: memory's window decisions replay exactly. Budgets and cost use the usage the
model reports; counts here only decide what fits a context before a call.
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from typing import Any

ENCODING = "o200k_base"


@functools.cache
def _encoding() -> Any:
    # Its vocabulary takes a few tenths of a second of CPU to read (most of it loading the
    # package's native library): a process loads it once (load_tokenizer), never on its event
    # loop in the middle of someone's step. The package reads its data with an
    # importlib.resources call Python deprecates; that is its business.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding(ENCODING)


async def load_tokenizer() -> None:
    """Read the tokenizer's vocabulary, in a thread the first time: memory, which counts the
    tokens of every message, calls it before it takes any event; the artifact store before it
    counts what it stores (so a tool-executor whose outputs all travel inline never loads it)."""
    if _encoding.cache_info().currsize == 0:
        await asyncio.to_thread(_encoding)


PIECE_CHARS = 256 * 1024
"""Longer texts are counted a piece at a time (the tokenizer takes under a million characters
at once), cut where a line or word ends, so pieces tokenize as the whole would."""


def count_tokens(text: str) -> int:
    """Tokens of `text` (plain text: special-token markers in it count as text)."""
    encode = _encoding().encode_ordinary
    total, start = 0, 0
    while start < len(text):
        end = _piece_end(text, start)
        total += len(encode(text[start:end]))
        start = end
    return total


def _piece_end(text: str, start: int) -> int:
    end = start + PIECE_CHARS
    if end >= len(text):
        return len(text)
    for stop in ("\n", " "):
        cut = text.rfind(stop, end - 4096, end)
        if cut > start:
            return cut + 1
    return end
