"""Prometheus (the Debian package), scraping every service instance `loopline services` runs."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
from pathlib import Path
from string import Template

from loopline_infra._components import Component, Ports
from loopline_infra._packages import PROMETHEUS, PROMTOOL, Say
from loopline_infra._paths import Paths
from loopline_infra._process import InfraError, run, spawn

DEFAULT_SCRAPE_INTERVAL_S = 5
RETENTION = "7d"
"""Enough history to compare today with last week, small enough for a laptop."""


def render_prometheus_config(
    template: Path,
    *,
    targets_dir: Path,
    rules_dir: Path,
    listen_address: str,
    scrape_interval_s: int = DEFAULT_SCRAPE_INTERVAL_S,
) -> str:
    """The checked-in prometheus.yml with its placeholders filled."""
    if scrape_interval_s < 1:
        raise InfraError(f"scrape interval must be at least 1 s, not {scrape_interval_s}")
    try:
        return Template(template.read_text()).substitute(
            scrape_interval=f"{scrape_interval_s}s",
            targets_dir=targets_dir,
            rules_dir=rules_dir,
            listen_address=listen_address,
        )
    except (KeyError, ValueError) as exc:
        raise InfraError(f"{template}: a placeholder this code does not fill: {exc}") from exc


class Prometheus(Component):
    """Prometheus on the project's own port, its data and rendered config in its folder.

    It scrapes the file_sd target files in `targets_dir` (one per service instance, written by
    `loopline services up`) and evaluates the rules in infra/prometheus/rules, read in place so
    that an edited rule takes effect on `reload()` (SIGHUP: its lifecycle API is off).
    """

    name = "prometheus"
    requirements = (PROMETHEUS, PROMTOOL)

    def __init__(
        self,
        paths: Paths,
        ports: Ports,
        *,
        targets_dir: Path | None = None,
        scrape_interval_s: int = DEFAULT_SCRAPE_INTERVAL_S,
    ):
        super().__init__(paths, ports)
        self.targets_dir = targets_dir or paths.service_targets
        self.scrape_interval_s = scrape_interval_s

    @property
    def ports_used(self) -> tuple[int, ...]:
        return (self.ports.prometheus,)

    @property
    def listen_address(self) -> str:
        return f"127.0.0.1:{self.ports.prometheus}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.listen_address}"

    @property
    def config(self) -> Path:
        """The rendered configuration Prometheus runs with."""
        return self.dir / "prometheus.yml"

    def prepare(self, say: Say) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # file_sd watches the folder: it must exist before the first service writes into it.
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            render_prometheus_config(
                self.paths.prometheus_template,
                targets_dir=self.targets_dir,
                rules_dir=self.paths.prometheus_rules,
                listen_address=self.listen_address,
                scrape_interval_s=self.scrape_interval_s,
            )
        )
        # A broken rule would otherwise only show in the server's log, after "ready".
        run(["promtool", "check", "config", str(self.config)], what="promtool check config")

    def start(self) -> None:
        spawn(
            [
                "prometheus",
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address={self.listen_address}",
                # No lifecycle API (POST /-/quit, /-/reload): anyone reaching the port could
                # stop it. Its configuration and rules are reloaded on SIGHUP (`reload`).
            ],
            log=self.log,
            pid_file=self.pid_file,
        )

    async def ready(self) -> None:
        await asyncio.to_thread(_get, f"{self.endpoint}/-/ready")

    def reload(self) -> None:
        """Read the configuration and the rules again (SIGHUP)."""
        pid = self.pid()
        if pid is None:
            raise InfraError("prometheus is not running")
        os.kill(pid, signal.SIGHUP)


def _get(url: str) -> None:
    """GET `url`; raises unless it answers 200 (urllib raises HTTPError on 4xx/5xx)."""
    with urllib.request.urlopen(url, timeout=3) as response:
        if response.status != 200:
            raise InfraError(f"{url} answered {response.status}")
