"""Recovery's use cases: judge every dead letter, and re-publish retries when they are due."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import uuid5

from loopline_bus import Bus, Outbound
from loopline_events import (
    CONTROL,
    RETRIES_HEADER,
    DeadLettered,
    Envelope,
    FailRun,
    RedriveDeadLetter,
    utcnow,
)

from loopline_recovery.adapters.ledger import DeadLetterLedger, RedriveLedger
from loopline_recovery.domain import RetryPolicy, Verdict, judge

PRODUCER = "recovery"

log = logging.getLogger("loopline.recovery")


class RecoveryHandler:
    """Records each dead letter with its verdict; schedules a retry or parks it and fails
    its run.

    A run is failed by asking memory, the one writer of a run's end: `FailRun` on
    agent.control, which memory folds and answers with `RunFailed`. The outputs are derived
    from the dead letter alone, with ids derived from its id, so a redelivered dead letter
    yields the same retry and the same FailRun again: nothing is lost between the ledger write
    and the broker's acknowledgement, and nothing doubles.
    """

    def __init__(
        self,
        ledger: DeadLetterLedger,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.ledger = ledger
        self.policy = policy or RetryPolicy()
        self.clock = clock

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        letter = event.payload
        if not isinstance(letter, DeadLettered) or letter.not_before is not None:
            return ()
        verdict = judge(letter, event.run_id, event.occurred_at, self.policy)
        if await self.ledger.record(event, letter, verdict):
            log.warning(
                "dead letter %s from %s of run %s: %s",
                verdict.category.value,
                letter.source_topic,
                event.run_id,
                "retry in " + verdict.retry_topic if verdict.retry_topic else verdict.message,
            )
        if verdict.retry_topic is not None:
            waiting = letter.model_copy(update={"not_before": verdict.not_before})
            retry = event.follow(waiting, producer=PRODUCER)
            return [Outbound(verdict.retry_topic, retry)]
        if verdict.fail_reason is None:
            return ()
        if not await self.ledger.fail_run(event.run_id, verdict.fail_reason, event.event_id):
            return ()  # another dead letter failed the run already
        return [Outbound(CONTROL.name, _fail_run(event, verdict))]


def _fail_run(event: Envelope[Any], verdict: Verdict) -> Envelope[FailRun]:
    assert verdict.fail_reason is not None
    command = FailRun(
        reason=verdict.fail_reason,
        message=f"{verdict.message} (inspect: loopline dlq show {str(event.event_id)[:8]})",
        requested_by=PRODUCER,
    )
    return Envelope.of(
        command,
        run_id=event.run_id,
        producer=PRODUCER,
        tenant=event.tenant,
        causation_id=event.event_id,
        event_id=uuid5(event.event_id, f"{PRODUCER}/fail-run"),
    )


Sleep = Callable[[float], Awaitable[None]]


class RetryHandler:
    """Waits for a retry's `not_before`, then re-publishes its message, unchanged but for the
    retry count header, to the source topic.

    Each retry topic is one delay tier: its entries wait equally long, so the head of a
    partition is always the first due, and waiting on it delays nothing due earlier.
    """

    def __init__(
        self, bus: Bus, clock: Callable[[], datetime] = utcnow, sleep: Sleep = asyncio.sleep
    ):
        self.bus, self.clock, self.sleep = bus, clock, sleep

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        letter = event.payload
        if not isinstance(letter, DeadLettered) or letter.not_before is None:
            return ()
        wait = (letter.not_before - self.clock()).total_seconds()
        if wait > 0:
            await self.sleep(wait)
        retries = 1 + next(
            (int(v) for k, v in letter.original_headers if k == RETRIES_HEADER and v.isdigit()),
            0,
        )
        headers = [(k, v) for k, v in letter.original_headers if k != RETRIES_HEADER]
        headers.append((RETRIES_HEADER, str(retries).encode()))
        await self.bus.publish_raw(
            letter.source_topic, letter.original_value, key=letter.original_key, headers=headers
        )
        log.info("retry %d of %s re-published to %s", retries, event.run_id, letter.source_topic)
        return ()


class RedriveHandler:
    """Carries out operators' redrives: a parked dead letter's original key, bytes and
    headers go back to its source topic, less the retry count (a redrive starts a new budget
    of retries), and the letter is marked `redriven`.

    Marked after the broker acknowledged the message: a crash in between re-publishes it once
    more when the command is redelivered, which the services' idempotence makes harmless. A
    letter that is not parked (retrying, redriven already, or unknown) is left as it is.
    """

    def __init__(self, ledger: RedriveLedger, bus: Bus):
        self.ledger, self.bus = ledger, bus

    async def __call__(self, event: Envelope[Any]) -> Sequence[Outbound]:
        command = event.payload
        if not isinstance(command, RedriveDeadLetter):
            return ()
        letter = await self.ledger.parked(command.dead_letter_id)
        if letter is None:
            log.info("redrive of %s asked: not a parked dead letter", command.dead_letter_id)
            return ()
        headers = [(k, v) for k, v in letter.headers if k != RETRIES_HEADER]
        await self.bus.publish_raw(
            letter.source_topic, letter.value, key=letter.key, headers=headers
        )
        await self.ledger.mark_redriven(command.dead_letter_id)
        log.warning(
            "dead letter %s of run %s redriven to %s (asked by %s)",
            command.dead_letter_id,
            event.run_id,
            letter.source_topic,
            command.requested_by or "an operator",
        )
        return ()
