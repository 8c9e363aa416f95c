"""Healing a run reads its log: a log that cannot be read now is a transient error, which the
bus tries again and recovery retries, never a message parked as poison."""

from __future__ import annotations

import socket
import uuid
from typing import Any, cast

import pytest
from loopline_events import TransientError
from loopline_memory.domain import Environment
from loopline_memory.rebuild import Rebuilder
from loopline_runtime import KafkaSettings


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_log_out_of_reach_makes_healing_a_transient_error() -> None:
    rebuilder = Rebuilder(cast(Any, None), Environment(profiles={}), cast(Any, None))
    away = KafkaSettings(bootstrap=f"127.0.0.1:{closed_port()}")
    with pytest.raises(TransientError, match="the log of run r-1 could not be read"):
        await rebuilder.heal(away, "r-1", uuid.uuid4())
