"""The `loopline` command."""

from __future__ import annotations

import importlib
from typing import Any

import click
from loopline_runtime import ConfigurationError, settings_problem

from loopline import __version__

EXIT_CONFIGURATION = 2

COMMANDS = {
    "submit": "_runs",
    "tail": "_runs",
    "runs": "_runs",
    "show": "_runs",
    "cancel": "_runs",
    "approvals": "_approvals",
    "say": "_approvals",
    "replay": "_replay",
    "rerun": "_replay",
    "fork": "_replay",
    "rebuild": "_replay",
    "dlq": "_dlq",
    "keys": "_keys",
    "sign": "_sign",
    "serve": "_serve",
    "services": "_serve",
    "infra": "_infra",
    "tenants": "_access",
}
"""Each command and the module of `loopline.cli` defining it, imported when the command runs:
a service started with `loopline serve` loads what it serves, not the gateway or the SDK."""


class _Commands(click.Group):
    """Every command, loaded when asked for; a configuration to fix (a setting, a file, topics
    that do not fit) is told in one line and exit 2, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(f"loopline.cli.{module}"), cmd_name)
        assert isinstance(command, click.Command)
        return command

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


__all__ = ["main"]
