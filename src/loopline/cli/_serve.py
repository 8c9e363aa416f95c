"""`loopline serve NAME` and `loopline services up|down|status`."""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import os
import sys

import click
from loopline_infra import (
    PROCESSES,
    CredentialStore,
    InfraError,
    Services,
    default_paths,
    provision_namespace,
)
from loopline_runtime import (
    ConfigurationError,
    KafkaSettings,
    Stop,
    configure_logging,
    serve_until_signalled,
    settings_problem,
)

MODULES = {
    "memory": "loopline_memory.main",
    "planner": "loopline_planner.main",
    "tool-executor": "loopline_tool_executor.main",
    "recovery": "loopline_recovery.main",
    "gateway": "loopline.gateway.main",
}


@click.command()
@click.argument("name", type=click.Choice(PROCESSES))
def serve(name: str) -> None:
    """Run one service (or the gateway) in the foreground until SIGTERM or Ctrl-C."""
    configure_logging(name)
    start = importlib.import_module(MODULES[name]).start
    # What was loaded to start lives as long as the process: the collector's full passes skip
    # it, so their cost follows what the service holds of its runs, not its imports.
    gc.freeze()

    async def main() -> None:
        async def started() -> Stop:
            stop: Stop = await start()
            return stop

        await serve_until_signalled(name, started)

    try:
        asyncio.run(main())
    except Exception as exc:
        # A configuration to fix, not a crash: told in a line, no traceback.
        problem = (
            str(exc) if isinstance(exc, ConfigurationError | OSError) else settings_problem(exc)
        )
        if problem is None:
            raise
        logging.getLogger(f"loopline.{name}").error("cannot start: %s", problem)
        click.echo(f"error: {name} cannot start: {problem}", err=True)
        sys.exit(2)


@click.group()
def services() -> None:
    """Run the four services and the gateway in the background (logs and pids in
    .loopline/services)."""


def _local_store() -> CredentialStore | None:
    """This machine's credentials, unless the environment points at another cluster or names
    credentials of its own (then every process takes the environment as it is)."""
    store = CredentialStore(default_paths())
    found = store.load()
    if found is None or os.environ.get("LOOPLINE_KAFKA_USERNAME"):
        return None
    bootstrap = os.environ.get("LOOPLINE_KAFKA_BOOTSTRAP")
    if bootstrap and bootstrap != found.endpoints.kafka_bootstrap:
        return None
    return store


def _services() -> Services:
    return Services(default_paths().home, store=_local_store())


@services.command("up")
@click.option(
    "--replicas", type=int, default=1, show_default=True, help="Instances of each service."
)
def services_up(replicas: int) -> None:
    """Start the services that are not running and wait until each consumes; then the gateway
    (one instance, on LOOPLINE_GATEWAY_PORT, 18080 by default), whose page URL is printed."""
    services = _services()
    try:
        if services.store is not None:
            # The namespace's topics and ACLs, made by the cluster's admin: the services may
            # check topics, not create them.
            found = services.store.require()
            settings = KafkaSettings(
                bootstrap=found.endpoints.kafka_bootstrap,
                security_protocol="PLAINTEXT",
                username=None,
                password=None,
            )
            asyncio.run(provision_namespace(found, settings))
        services.up(replicas=replicas, say=click.echo)
    except InfraError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@services.command("down")
def services_down() -> None:
    """Stop every service (each finishes and commits its batch)."""
    _services().down(say=click.echo)


@services.command("status")
@click.option("--json", "as_json", is_flag=True)
def services_status(as_json: bool) -> None:
    """Each service instance: state, pid, the URL of its /metrics, /healthz and /readyz, and its
    log; exit 1 unless all run."""
    statuses = _services().status()
    if as_json:
        rows = [
            {
                "name": s.name,
                "state": s.state,
                "pid": s.pid,
                "url": s.url,
                "metrics": f"{s.url}/metrics" if s.url else None,
                "api": s.api_url,
                "log": str(s.log),
            }
            for s in statuses
        ]
        click.echo(json.dumps(rows, indent=2))
    else:
        for s in statuses:
            page = f"  page {s.api_url}/" if s.api_url else ""
            click.echo(
                f"{s.name:<16} {s.state:<8} {s.pid or '':<8} {s.url or '-':<24} {s.log}{page}"
            )
    sys.exit(0 if statuses and all(s.state == "running" for s in statuses) else 1)
