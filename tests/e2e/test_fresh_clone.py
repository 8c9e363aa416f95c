"""The README as a newcomer meets it: a fresh clone, `make demo`, the commands it suggests,
and a tool package of one's own in tools/ that stays installed across `make` targets.

The clone runs servers of its own, on free ports, so it meets nothing this test run started.
(`make test` on a fresh clone is what CI itself runs: `.ci/run` on a clean clone of main.)
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clone:
    """A fresh clone of the project, with an environment of its own."""

    def __init__(self, path: Path):
        self.path = path
        kafka, controller, redis, postgres, prometheus = (_free_port() for _ in range(5))
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LOOPLINE_", "VIRTUAL_ENV", "PYTEST", "OPENAI_"))
        }
        self.env = {
            **inherited,
            "LOOPLINE_INFRA_KAFKA_PORT": str(kafka),
            "LOOPLINE_INFRA_KAFKA_CONTROLLER_PORT": str(controller),
            "LOOPLINE_INFRA_REDIS_PORT": str(redis),
            "LOOPLINE_INFRA_POSTGRES_PORT": str(postgres),
            "LOOPLINE_INFRA_PROMETHEUS_PORT": str(prometheus),
            # Nothing else: the CLI finds the servers, and the operator's credentials, in the
            # credentials file `make demo` writes into the clone's .loopline/.
        }

    def run(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`command` in a shell at the clone's root, as a user types it."""
        return subprocess.run(
            command,
            shell=True,
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def tools(self) -> list[str]:
        listed = self.run(
            'uv run --frozen python -c "from loopline_tools import ToolRegistry; '
            'print(*ToolRegistry.default().names())"'
        )
        assert listed.returncode == 0, listed.stderr
        return listed.stdout.split()


@pytest.fixture(scope="module")
def clone() -> Iterator[Clone]:
    base = Path(tempfile.mkdtemp(prefix="loopline-clone-"))
    base.chmod(0o755)  # PostgreSQL runs as its own account when we are root: it must reach it
    path = base / "loopline"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(path)], check=True, timeout=120)
    fresh = Clone(path)
    try:
        yield fresh
    finally:
        fresh.run("make down", timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def _readme_first_screen() -> list[str]:
    """The commands of the README's first code block."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.timeout(600)
def test_make_demo_on_a_fresh_clone_runs_a_goal_and_what_it_suggests_works(clone: Clone) -> None:
    assert _readme_first_screen() == ["make demo", "make test"]
    demo = clone.run("make demo", timeout=480)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    lines = demo.stdout.splitlines()
    suggested = next(line for line in lines if line.startswith("Loopline is running. Try: "))
    before = lines[: lines.index(suggested)]
    answer = next(line for line in reversed(before) if line.strip())  # the run's, then a hint
    assert answer.endswith("The answer is 120."), demo.stdout[-2000:]
    command = suggested.removeprefix("Loopline is running. Try: ")
    answered = clone.run(command, timeout=120)
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert "21" in answered.stdout.splitlines()[-1]
    listed = clone.run("uv run loopline runs")
    assert listed.returncode == 0
    assert len([line for line in listed.stdout.splitlines() if " completed " in line]) == 2
    kcat = clone.run("command -v kcat")
    assert kcat.returncode == 0, "make demo installs kcat, which the README's examples use"


@pytest.mark.timeout(600)
def test_a_tool_package_in_tools_stays_installed_across_make_targets(clone: Clone) -> None:
    guide = (clone.path / "tools" / "README.md").read_text()
    blocks = dict(re.findall(r"```\w+\n# (tools/\S+)\n(.*?)```", guide, re.DOTALL))
    assert set(blocks) == {
        "tools/shouting/pyproject.toml",
        "tools/shouting/src/shouting_tools/__init__.py",
    }
    for relative, text in blocks.items():
        target = clone.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    installed = clone.run("make install")
    assert installed.returncode == 0, installed.stderr
    assert "shout" in clone.tools()
    clone.run("uv sync --frozen --quiet")  # exact: what make targets once ran
    assert "shout" not in clone.tools()
    clone.run("make infra-status")  # any target: each installs first
    assert "shout" in clone.tools()
