"""The text of stored outputs a request shows, read from the artifact store and kept a while:
a run's next steps show most of them again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from loopline_artifacts import ArtifactStore

HELD_CHARS = 64 * 1024 * 1024
"""Characters of artifact text a planner keeps in its process."""


class ArtifactTexts:
    """Artifact texts by reference, whole or their first characters."""

    def __init__(self, store: ArtifactStore, held_chars: int = HELD_CHARS):
        self.store, self.held_chars = store, held_chars
        self._held: OrderedDict[str, str] = OrderedDict()
        self._size = 0

    async def texts(self, wanted: Mapping[str, int | None]) -> dict[str, str]:
        """For each reference, its whole text (None) or at least its first characters."""
        found: dict[str, str] = {}
        missing_whole: list[str] = []
        for ref, chars in wanted.items():
            held = self._held.get(ref)
            if held is not None and (chars is None or len(held) >= chars):
                self._held.move_to_end(ref)
                found[ref] = held
            elif chars is None:
                missing_whole.append(ref)
            else:
                found[ref] = await self.store.read(ref, 0, chars)
        if missing_whole:
            read = await self.store.read_many(missing_whole)
            for ref in missing_whole:
                if ref not in read:
                    raise LookupError(f"artifact {ref} is not in the artifact store")
                found[ref] = read[ref]
                self._hold(ref, read[ref])
        return found

    def _hold(self, ref: str, text: str) -> None:
        if len(text) > self.held_chars // 4:
            return  # one huge output would push out everything else
        self._held[ref] = text
        self._size += len(text)
        while self._size > self.held_chars:
            _, gone = self._held.popitem(last=False)
            self._size -= len(gone)
