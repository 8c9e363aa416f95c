"""The system programs the infrastructure needs, and how to get them."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loopline_infra._process import InfraError

Say = Callable[[str], None]
"""Where progress lines go."""


@dataclass(frozen=True)
class Requirement:
    program: str
    debian_package: str


REDIS = Requirement("redis-server", "redis-server")
POSTGRES = Requirement("initdb", "postgresql")
JAVA = Requirement("java", "openjdk-17-jre-headless")
MAVEN = Requirement("mvn", "maven")
PROMETHEUS = Requirement("prometheus", "prometheus")
PROMTOOL = Requirement("promtool", "prometheus")
KCAT = Requirement("kcat", "kcat")
"""Not needed by the broker: the Kafka client the README's raw-Kafka examples use."""


def postgres_bin_dir() -> Path | None:
    """The folder of initdb/pg_ctl/postgres, on PATH or in Debian's versioned folders."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _present(req: Requirement) -> bool:
    if req is POSTGRES:
        return postgres_bin_dir() is not None
    return shutil.which(req.program) is not None


def _is_debian() -> bool:
    return Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def ensure_programs(reqs: list[Requirement], say: Say) -> None:
    """Install missing programs with apt on Debian as root; otherwise explain how."""
    missing = [r for r in reqs if not _present(r)]
    if not missing:
        return
    packages = sorted({r.debian_package for r in missing})
    names = ", ".join(r.program for r in missing)
    if _is_debian() and os.geteuid() == 0:
        say(f"installing {', '.join(packages)} with apt (missing: {names})")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        ):
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise InfraError(f"{' '.join(argv)} failed:\n{done.stderr.strip()[-2000:]}")
        # Debian's postgresql and prometheus packages may start their own servers (on 5432 and
        # 9090) where an init system runs; ours run on their own ports and never meet them.
        return
    hint = (
        f"sudo apt-get install -y {' '.join(packages)}"
        if _is_debian()
        else f"install {names} with your package manager"
    )
    raise InfraError(
        f"missing programs: {names}. Install them ({hint}), "
        "or run the infrastructure with Docker: docker compose up -d"
    )
