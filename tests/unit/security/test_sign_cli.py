"""`loopline sign`: what a raw Kafka client produces after it is signed by its tenant's key."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from loopline_events import Keyring, SigningKey, Verified, decode_event

from loopline.cli import main

ACME = SigningKey("client-acme", os.urandom(32))
GOAL = {"type": "GoalSubmitted", "run_id": "run-42", "tenant": "acme", "payload": {"goal": "6*7?"}}


@pytest.fixture
def acme_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY_ID", ACME.key_id)
    monkeypatch.setenv("LOOPLINE_SIGNING_KEY", base64.b64encode(ACME.secret).decode())


@pytest.mark.usefixtures("acme_env")
def test_each_line_is_filled_in_signed_and_verifies() -> None:
    lines = f"{json.dumps(GOAL)}\n\n{json.dumps(GOAL)}\n"
    result = CliRunner().invoke(main, ["sign"], input=lines)
    assert result.exit_code == 0, result.output
    signed = [decode_event(line) for line in result.output.splitlines()]
    assert len(signed) == 2
    assert signed[0].event_id != signed[1].event_id  # each got its own id before signing
    ring = Keyring.of([(ACME, ["acme"])])
    assert [ring.verify(e) for e in signed] == [Verified("client-acme", acts_for_any=False)] * 2


@pytest.mark.usefixtures("acme_env")
def test_a_line_that_is_no_event_is_told_and_exits_1() -> None:
    result = CliRunner().invoke(main, ["sign"], input=f"not json\n{json.dumps(GOAL)}\n")
    assert result.exit_code == 1
    assert "error: line 1: undecodable" in result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_without_a_key_it_says_what_to_set_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LOOPLINE_SIGNING_KEY_ID", raising=False)
    monkeypatch.delenv("LOOPLINE_SIGNING_KEY", raising=False)
    monkeypatch.delenv("LOOPLINE_CREDENTIALS_FILE", raising=False)
    monkeypatch.setenv("LOOPLINE_HOME", str(tmp_path))  # no credentials file there
    result = CliRunner().invoke(main, ["sign"], input=json.dumps(GOAL))
    assert result.exit_code == 2
    assert "set LOOPLINE_SIGNING_KEY_ID and LOOPLINE_SIGNING_KEY" in result.stderr
