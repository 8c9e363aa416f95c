"""Test files in order of their last known length, longest first.

With `pytest -n N --dist loadfile --no-loadscope-reorder`, each worker takes the next file in
collection order when it runs dry: started first, the long files end while short ones fill the
other workers, instead of a long file starting last and running alone. The lengths are a JSON
map of file to seconds (the `loopline_durations` ini setting); a file it lacks runs after those
it has, in collection order. `--record-durations PATH` writes the map of the run it ends.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS_INI = "loopline_durations"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        DURATIONS_INI,
        "JSON file of each test file's seconds (from --record-durations): longest run first",
        default="",
    )
    parser.addoption(
        "--record-durations",
        metavar="PATH",
        default=None,
        help="write each test file's seconds (set-up, call and tear-down summed) to PATH as JSON",
    )


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def known_durations(config: pytest.Config) -> dict[str, float]:
    name = str(config.getini(DURATIONS_INI))
    if not name:
        return {}
    path = config.rootpath / name
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"{path}: not a JSON map of test files to seconds ({exc})") from exc
    if not isinstance(loaded, dict) or not all(isinstance(v, int | float) for v in loaded.values()):
        raise pytest.UsageError(f"{path}: not a JSON map of test files to seconds")
    return {str(k): float(v) for k, v in loaded.items()}


def longest_first(items: list[pytest.Item], durations: dict[str, float]) -> None:
    """Reorder `items` in place: files by descending known seconds, unknown files after them
    in their order; a file's tests keep theirs."""
    if not durations:
        return
    items.sort(key=lambda item: -durations.get(file_of(item.nodeid), 0.0))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    longest_first(items, known_durations(config))


class Recorder:
    """Sums each file's reported seconds; writes them at the session's end (on the controller
    alone when the run is distributed: it receives every worker's reports)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self) -> None:
        ordered = sorted(self.seconds.items(), key=lambda kv: (-kv[1], kv[0]))
        self.path.write_text(json.dumps({f: round(s, 1) for f, s in ordered}, indent=1) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--record-durations")
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(Recorder(Path(path)), "loopline-record-durations")
