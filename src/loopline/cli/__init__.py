"""The `loopline` command."""

from __future__ import annotations

from typing import Any

import click
from loopline_runtime import ConfigurationError, settings_problem

from loopline import __version__
from loopline.cli._access import tenants
from loopline.cli._approvals import approvals, say
from loopline.cli._dlq import dlq
from loopline.cli._infra import infra
from loopline.cli._keys import keys
from loopline.cli._replay import fork, rebuild, replay, rerun
from loopline.cli._runs import cancel, runs, show, submit, tail
from loopline.cli._serve import serve, services
from loopline.cli._sign import sign

EXIT_CONFIGURATION = 2


class _Commands(click.Group):
    """Every command: a configuration to fix (a setting, a file, topics that do not fit) is
    told in one line and exit 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_CONFIGURATION)
        except Exception as exc:
            problem = settings_problem(exc)
            if problem is None:
                raise
            click.echo(f"error: {problem}", err=True)
            ctx.exit(EXIT_CONFIGURATION)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
    approvals,
    say,
    replay,
    rerun,
    fork,
    rebuild,
    dlq,
    keys,
    sign,
    serve,
    services,
    infra,
    tenants,
):
    main.add_command(command)

__all__ = ["main"]
