"""The `loopline` command."""

from __future__ import annotations

import click

from loopline import __version__
from loopline.cli._dlq import dlq
from loopline.cli._infra import infra
from loopline.cli._keys import keys
from loopline.cli._replay import fork, rebuild, replay, rerun
from loopline.cli._runs import cancel, runs, show, submit, tail
from loopline.cli._serve import serve, services


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loopline")
def main() -> None:
    """Loopline runs AI agents on Apache Kafka: submit goals, watch runs, operate the system.

    Endpoints come from LOOPLINE_KAFKA_BOOTSTRAP, LOOPLINE_REDIS_URL and LOOPLINE_POSTGRES_DSN.
    """


for command in (
    submit,
    tail,
    runs,
    show,
    cancel,
    replay,
    rerun,
    fork,
    rebuild,
    dlq,
    keys,
    serve,
    services,
    infra,
):
    main.add_command(command)

__all__ = ["main"]
