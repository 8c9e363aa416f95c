"""Partial model output as it is written: delta events on the stream topic, and how a reader
puts them together without showing any text twice.

Deltas are not part of a run's durable history: memory does not fold them, replay does not
read them, the topic keeps them briefly. The step's `ModelDecided` remains the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from loopline_events._envelope import Envelope, Payload


class ModelTextDelta(Payload):
    """Text the model wrote for a step, published while it writes (on agent.stream).

    The step's text is `text[:offset] + delta.text` after each delta: a delta usually extends
    the text (`offset` at its end); a retried call whose text agrees with what was already
    published sends only what is new, and one that writes differently sends its text from the
    first character that differs, with the lower `offset`. `attempt` tells the calls apart.
    """

    TYPE = "ModelTextDelta"

    model: str = Field(description="The model writing.")
    attempt: int = Field(default=1, ge=1, description="The call of the step that wrote it.")
    offset: int = Field(default=0, ge=0, description="Where in the step's text it starts.")
    text: str = Field(description="The text from `offset` on, as far as written.")


@dataclass(frozen=True, slots=True)
class TextChunk:
    """New text of a step to show: `text` follows what was shown, unless `rewrite` says the
    step's text changed from `offset` on (a retried call wrote differently)."""

    run_id: str
    step: int
    text: str
    attempt: int = 1
    rewrite: bool = False
    offset: int = 0


@dataclass
class StreamedText:
    """The text of each step of a run, from its deltas, in any order and with repeats.

    `add` returns what a reader has not shown yet, or None when a delta adds nothing (a
    duplicate, an older call's text, a retry repeating text already shown).
    """

    steps: dict[int, tuple[int, str]] = field(default_factory=dict)
    """Per step: the latest call seen and the text shown so far."""

    def add(self, event: Envelope[ModelTextDelta]) -> TextChunk | None:
        """What to show for `event`, if anything."""
        delta = event.payload
        attempt, shown = self.steps.get(event.seq, (0, ""))
        if delta.attempt < attempt or delta.offset > len(shown):
            return None  # an older call's text, or a gap (a delta lost): nothing to append to
        text = shown[: delta.offset] + delta.text
        if shown.startswith(text):
            return None  # shown already: a duplicate, or a retry repeating what was written
        self.steps[event.seq] = (delta.attempt, text)
        if text.startswith(shown):
            return TextChunk(
                event.run_id, event.seq, text[len(shown) :], delta.attempt, offset=len(shown)
            )
        common = _common_prefix(shown, text)
        return TextChunk(
            event.run_id, event.seq, text[common:], delta.attempt, rewrite=True, offset=common
        )

    def text(self, step: int) -> str:
        """The step's text as shown so far."""
        return self.steps.get(step, (0, ""))[1]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
