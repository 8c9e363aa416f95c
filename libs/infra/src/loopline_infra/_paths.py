"""Where the project's infrastructure files, data and caches live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loopline_runtime import find_project_dir

KAFKA_VERSION = "4.4.0"


def _find_project_dir() -> Path:
    found = find_project_dir()
    if found is not None:
        return found
    raise RuntimeError(
        "cannot find the Loopline project (a folder with infra/kafka/pom.xml): "
        "run from the project or set LOOPLINE_PROJECT_DIR"
    )


@dataclass(frozen=True)
class Paths:
    """The folders `loopline infra` works in."""

    project: Path
    """The project checkout: infra/ configuration files."""
    home: Path
    """Data, logs and pid files of the running components (LOOPLINE_HOME)."""
    cache: Path
    """Downloads kept across checkouts, such as the Kafka jars (outside the project)."""

    @property
    def kafka_libs(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def service_targets(self) -> Path:
        """Prometheus file_sd target files, one per running service instance."""
        return self.home / "services" / "targets"

    @property
    def prometheus_template(self) -> Path:
        return self.project / "infra" / "prometheus" / "prometheus.yml"

    @property
    def prometheus_rules(self) -> Path:
        """Recording and alert rules, loaded in place by every Prometheus the project runs."""
        return self.project / "infra" / "prometheus" / "rules"

    def component(self, name: str) -> Path:
        return self.home / name


def default_paths() -> Paths:
    """Paths from the environment: LOOPLINE_HOME, XDG_CACHE_HOME, LOOPLINE_PROJECT_DIR."""
    project = _find_project_dir()
    home = Path(os.environ.get("LOOPLINE_HOME") or project / ".loopline")
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Paths(project=project, home=home.resolve(), cache=cache_root / "loopline")
