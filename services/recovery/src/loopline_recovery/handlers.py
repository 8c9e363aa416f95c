"""Recovery's use case (for now): account for every dead letter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from loopline_bus import Outbound
from loopline_events import DeadLettered, Envelope

from loopline_recovery.adapters.ledger import DeadLetterLedger

log = logging.getLogger("loopline.recovery")


class RecoveryHandler:
    """Records each dead letter so an operator can list and inspect it."""

    def __init__(self, ledger: DeadLetterLedger):
        self.ledger = ledger

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        letter = event.payload
        if not isinstance(letter, DeadLettered):
            return ()
        if await self.ledger.record(event, letter):
            log.warning(
                "dead letter from %s (%s) of run %s: %s",
                letter.source_topic,
                letter.kind.value,
                event.run_id,
                letter.error,
            )
        return ()
