"""JSON Schema of every event, generated from the models, and a backward-compatibility check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loopline_events._codec import EVENT_TYPES
from loopline_events._envelope import Envelope


def schema_file_name(event_type: str, version: int) -> str:
    """`GoalSubmitted.v1.json`."""
    return f"{event_type}.v{version}.json"


def generate_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of the envelope carrying each event at its current version."""
    out: dict[str, dict[str, Any]] = {}
    for name, cls in sorted(EVENT_TYPES.items()):
        schema = Envelope[cls].model_json_schema()  # type: ignore[valid-type]
        schema["title"] = name
        schema["$id"] = f"loopline:{name}:v{cls.VERSION}"
        out[schema_file_name(name, cls.VERSION)] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """The checked-in text of a schema."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[str]:
    """Write every schema into `directory`; return the names of files that changed.

    Refuses to overwrite a schema with one a reader of the old one could not read: bump the
    event's VERSION and register an upcaster instead.
    """
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for file_name, schema in generate_schemas().items():
        path = directory / file_name
        text = render(schema)
        if path.exists():
            if path.read_text() == text:
                continue
            problems = compatibility_problems(json.loads(path.read_text()), schema)
            if problems:
                raise IncompatibleSchemaError(file_name, problems)
        path.write_text(text)
        changed.append(file_name)
    return changed


class IncompatibleSchemaError(Exception):
    """A model change that would break readers of events already written."""

    def __init__(self, file_name: str, problems: list[str]):
        super().__init__(
            f"{file_name}: not backward compatible: {'; '.join(problems)}. "
            "Bump the event's VERSION and register an upcaster."
        )
        self.problems = problems


def compatibility_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why events valid under `old` might not be read by a model with schema `new`.

    Backward compatible means: no field removed or retyped, and every field that is required
    now was required before (a new field must have a default).
    """
    return _compare(old, new, old.get("$defs", {}), new.get("$defs", {}), "", set())


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return dict(defs.get(ref.removeprefix("#/$defs/"), {}))
    return schema


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    old_defs: dict[str, Any],
    new_defs: dict[str, Any],
    where: str,
    seen: set[tuple[str, str]],
) -> list[str]:
    key = (json.dumps(old, sort_keys=True), json.dumps(new, sort_keys=True))
    if key in seen:
        return []
    seen.add(key)
    old, new = _resolve(old, old_defs), _resolve(new, new_defs)
    problems: list[str] = []
    if old.get("type") != new.get("type"):
        problems.append(f"{where or '(root)'} changed type {old.get('type')}->{new.get('type')}")
    if "const" in old and old.get("const") != new.get("const"):
        problems.append(f"{where} changed its constant")
    if "enum" in old and not set(old["enum"]) <= set(new.get("enum", old["enum"])):
        problems.append(f"{where} dropped enum values")
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    for name, old_prop in old_props.items():
        path = f"{where}.{name}" if where else name
        if name not in new_props:
            problems.append(f"{path} was removed")
            continue
        problems += _compare(old_prop, new_props[name], old_defs, new_defs, path, seen)
    newly_required = set(new.get("required", ())) - set(old.get("required", ()))
    problems += [f"{where}.{n}".lstrip(".") + " became required" for n in sorted(newly_required)]
    for branch in ("anyOf", "items"):
        old_b, new_b = old.get(branch), new.get(branch)
        if isinstance(old_b, dict) and isinstance(new_b, dict):
            problems += _compare(old_b, new_b, old_defs, new_defs, f"{where}[]", seen)
        elif isinstance(old_b, list) and isinstance(new_b, list) and len(new_b) < len(old_b):
            problems.append(f"{where} accepts fewer alternatives")
    return problems
