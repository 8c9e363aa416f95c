"""`ToolRegistry`: lookup, specs for the model, and tools that packages offer by entry point."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from loopline_tools import BUILTIN_TOOLS, Tool, ToolContext, ToolRegistry, tool
from pydantic import BaseModel


class NoArgs(BaseModel):
    pass


def make_tool(name: str) -> Tool:
    async def fn(args: NoArgs, ctx: ToolContext) -> str:
        return name

    return tool(name=name, description=f"The {name} tool.")(fn)


@dataclass
class FakeEntryPoint:
    """Duck-types `importlib.metadata.EntryPoint`: what the registry reads of one."""

    name: str
    value: object

    def load(self) -> object:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *points: FakeEntryPoint) -> list[str]:
    """Install `points` as every entry point; return the groups asked for."""
    asked: list[str] = []

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        asked.append(group)
        return list(points)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return asked


def test_lookup_by_name() -> None:
    alpha, beta = make_tool("alpha"), make_tool("beta")
    registry = ToolRegistry([beta, alpha])
    assert registry.get("alpha") is alpha
    assert registry.get("gamma") is None
    assert "beta" in registry
    assert "gamma" not in registry
    assert registry.names() == ["alpha", "beta"]


def test_a_duplicate_name_is_refused() -> None:
    registry = ToolRegistry([make_tool("alpha")])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(make_tool("alpha"))
    with pytest.raises(ValueError, match="already registered"):
        ToolRegistry([make_tool("x"), make_tool("x")])


def test_specs_follow_the_order_asked_and_skip_unknown_names() -> None:
    registry = ToolRegistry([make_tool("alpha"), make_tool("beta"), make_tool("gamma")])
    assert [s.name for s in registry.specs()] == ["alpha", "beta", "gamma"]
    assert [s.name for s in registry.specs(["gamma", "nope", "alpha", "gamma"])] == [
        "gamma",
        "alpha",
    ]
    assert registry.specs([]) == ()
    assert registry.specs(["alpha"])[0].description == "The alpha tool."


def test_entry_points_may_give_a_tool_an_iterable_or_a_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory: Callable[[], tuple[Tool, ...]] = lambda: (make_tool("d"), make_tool("e"))  # noqa: E731
    asked = fake_entry_points(
        monkeypatch,
        FakeEntryPoint("one", make_tool("a")),
        FakeEntryPoint("many", [make_tool("b"), make_tool("c")]),
        FakeEntryPoint("factory", factory),
        FakeEntryPoint("single_factory", lambda: make_tool("f")),
    )
    registry = ToolRegistry()
    assert registry.load_entry_points("acme.tools") == ["a", "b", "c", "d", "e", "f"]
    assert asked == ["acme.tools"]
    assert registry.names() == ["a", "b", "c", "d", "e", "f"]


def test_default_is_the_builtins_and_the_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_entry_points(monkeypatch, FakeEntryPoint("extra", make_tool("weather")))
    registry = ToolRegistry.default()
    assert asked == ["loopline.tools"]
    assert registry.names() == sorted([*(t.name for t in BUILTIN_TOOLS), "weather"])
    assert registry.names() == [
        "calculator",
        "current_time",
        "http_get",
        "read_artifact",
        "weather",
    ]


def test_a_clash_with_an_entry_point_registers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("fine", make_tool("fresh")),
        FakeEntryPoint("clash", make_tool("calculator")),
    )
    registry = ToolRegistry(BUILTIN_TOOLS)
    with pytest.raises(ValueError, match="'calculator' is already registered"):
        registry.load_entry_points()
    assert "fresh" not in registry
    assert registry.names() == ["calculator", "current_time", "http_get", "read_artifact"]


def test_a_bad_entry_point_says_which_one(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, FakeEntryPoint("broken", 42))
    with pytest.raises(TypeError, match="expected a Tool") as raised:
        ToolRegistry().load_entry_points()
    assert any("'broken'" in note for note in raised.value.__notes__)

    fake_entry_points(monkeypatch, FakeEntryPoint("half", [make_tool("ok"), "not a tool"]))
    with pytest.raises(TypeError, match="expected a Tool"):
        ToolRegistry().load_entry_points()


def test_an_entry_point_that_fails_to_import_propagates_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_entry_points(monkeypatch, FakeEntryPoint("gone", ImportError("no module acme")))
    registry = ToolRegistry()
    with pytest.raises(ImportError, match="no module acme") as raised:
        registry.load_entry_points()
    assert any("'gone'" in note for note in raised.value.__notes__)
    assert registry.names() == []


def test_register_refuses_what_is_not_a_tool() -> None:
    with pytest.raises(TypeError, match="not a Tool"):
        ToolRegistry().register("calculator")  # type: ignore[arg-type]
