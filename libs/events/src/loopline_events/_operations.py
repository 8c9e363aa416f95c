"""Operators' commands to a service about its own records (on agent.operations)."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from loopline_events._envelope import Payload


class RedriveDeadLetter(Payload):
    """A command to recovery: re-publish this parked dead letter to its source topic.

    Recovery, which keeps the dead letters, carries it out: the original key, bytes and
    headers go back to the source topic with a fresh retry budget, and the letter is marked
    `redriven`. A letter that is not parked (retrying, or redriven already) is left as it is.
    The envelope's run id is the letter's run, its key.
    """

    TYPE = "RedriveDeadLetter"

    dead_letter_id: UUID = Field(description="Event id of the dead letter, as recovery lists it.")
    requested_by: str = Field(default="", max_length=128, description="Who asked.")
