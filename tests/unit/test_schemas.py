"""The checked-in JSON Schemas agree with the models, and changes stay backward compatible."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from loopline_events import (
    EVENT_TYPES,
    compatibility_problems,
    generate_schemas,
    render,
    schema_file_name,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"


def test_every_event_has_a_checked_in_schema_equal_to_its_model() -> None:
    generated = generate_schemas()
    assert set(generated) == {schema_file_name(n, c.VERSION) for n, c in EVENT_TYPES.items()}
    for name, schema in generated.items():
        path = SCHEMAS / name
        assert path.exists(), f"{name} is missing: run `make schemas`"
        assert path.read_text() == render(schema), f"{name} is stale: run `make schemas`"


def test_no_schema_file_is_left_without_a_model() -> None:
    known = {f"{n}.v{v}.json" for n, c in EVENT_TYPES.items() for v in range(1, c.VERSION + 1)}
    assert {p.name for p in SCHEMAS.glob("*.json")} <= known


def _history(path: Path) -> list[dict[str, Any]]:
    """Every committed version of a schema file, oldest first."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        return []
    rel = path.relative_to(ROOT).as_posix()
    commits = subprocess.run(
        [git, "log", "--format=%H", "--reverse", "--", rel],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out = []
    for commit in commits:
        shown = subprocess.run(
            [git, "show", f"{commit}:{rel}"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if shown.returncode == 0:
            out.append(json.loads(shown.stdout))
    return out


@pytest.mark.parametrize("name", sorted(generate_schemas()))
def test_the_model_still_reads_every_committed_version_of_its_schema(name: str) -> None:
    current = generate_schemas()[name]
    for old in _history(SCHEMAS / name):
        assert compatibility_problems(old, current) == []


BASE: dict[str, Any] = {
    "type": "object",
    "properties": {"a": {"type": "string"}, "b": {"type": "integer", "default": 0}},
    "required": ["a"],
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(BASE)), **changes}


def test_an_optional_new_field_is_compatible() -> None:
    new = _with(properties={**BASE["properties"], "c": {"type": "string", "default": ""}})
    assert compatibility_problems(BASE, new) == []


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        (_with(required=["a", "b"]), "b became required"),
        (_with(properties={"a": {"type": "string"}}), "b was removed"),
        (_with(properties={"a": {"type": "integer"}, "b": {"type": "integer"}}), "a changed type"),
        (
            _with(properties={**BASE["properties"], "c": {"type": "string"}}, required=["a", "c"]),
            "c became required",
        ),
    ],
)
def test_breaking_changes_are_caught(new: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in compatibility_problems(BASE, new))


def test_a_breaking_change_in_a_nested_model_is_caught() -> None:
    old = generate_schemas()["ModelDecided.v1.json"]
    new = json.loads(json.dumps(old))
    new["$defs"]["TokenUsage"]["required"] = ["prompt_tokens"]
    assert any("prompt_tokens became required" in p for p in compatibility_problems(old, new))
