"""`loopline sign`: sign goals and commands for any Kafka client to produce."""

from __future__ import annotations

import sys

import click
from loopline_events import EventDecodeError, decode_event, encode_event
from loopline_runtime import ConfigurationError, load_signing

from loopline.cli._runs import EXIT_FAILED


@click.command()
@click.option(
    "--as",
    "principal",
    metavar="PRINCIPAL",
    help="Sign with this principal's key from the credentials file (client-acme, say).",
)
def sign(principal: str | None) -> None:
    """Sign the events read from stdin, one JSON object per line, and print each signed.

    Fields the event leaves out (its id, its time) are filled in first, since a signature
    covers them. The key is PRINCIPAL's from the credentials file, else LOOPLINE_SIGNING_KEY_ID
    and LOOPLINE_SIGNING_KEY, else the local operator's. For example, a goal from kcat:

      echo '{"type": "GoalSubmitted", "run_id": "run-42", "tenant": "acme",
      "payload": {"goal": "What is 6 * 7?"}}' | loopline sign --as client-acme
      | kcat -P ... -t agent.goals -k run-42

    Exit 1 when a line is not an event (the others are still printed).
    """
    key = load_signing(principal).signing_key()
    if key is None:
        raise ConfigurationError(
            "nothing to sign with: give --as PRINCIPAL, or set LOOPLINE_SIGNING_KEY_ID and "
            "LOOPLINE_SIGNING_KEY"
        )
    failed = False
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            event = decode_event(line)
        except EventDecodeError as exc:
            click.echo(f"error: line {number}: {exc}", err=True)
            failed = True
            continue
        click.echo(encode_event(key.sign(event)).decode())
    if failed:
        sys.exit(EXIT_FAILED)
