"""The `loopline` command."""

from __future__ import annotations

import click

from loopline import __version__
from loopline.cli._infra import infra


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loopline")
def main() -> None:
    """Loopline runs AI agents on Apache Kafka: submit goals, watch runs, operate the system."""


main.add_command(infra)

__all__ = ["main"]
