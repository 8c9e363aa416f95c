"""What an MCP server lists and answers, mapped to Loopline's tools: pure rules."""

from __future__ import annotations

from typing import Any

import mcp_types as mcp
import pytest
from loopline_events import ToolErrorKind
from loopline_runtime import McpServerConfig, McpToolSettings
from loopline_tools import (
    Effect,
    ToolContext,
    ToolFailure,
    effect_of,
    render,
    run_tool,
    schema_problem,
    tools_of,
)

SERVER = McpServerConfig(name="files", command="files-server", timeout_s=7, max_output_chars=10)
OBJECT = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}


@pytest.mark.parametrize(
    ("annotations", "override", "effect"),
    [
        (None, None, Effect.SIDE_EFFECT),
        (mcp.ToolAnnotations(), None, Effect.SIDE_EFFECT),
        (mcp.ToolAnnotations(read_only_hint=True), None, Effect.PURE),
        (mcp.ToolAnnotations(read_only_hint=True, idempotent_hint=True), None, Effect.PURE),
        (mcp.ToolAnnotations(idempotent_hint=True), None, Effect.IDEMPOTENT),
        (
            mcp.ToolAnnotations(read_only_hint=False, destructive_hint=True),
            None,
            Effect.SIDE_EFFECT,
        ),
        (mcp.ToolAnnotations(read_only_hint=True), "side_effect", Effect.SIDE_EFFECT),
        (None, "pure", Effect.PURE),
    ],
)
def test_the_effect_comes_from_the_hints_unless_the_profile_says(
    annotations: mcp.ToolAnnotations | None, override: str | None, effect: Effect
) -> None:
    assert effect_of(annotations, override) is effect


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (OBJECT, None),
        ({"type": "object"}, None),
        ({}, None),
        ({"type": "object", "properties": {"x": {"type": 12}}}, "not valid JSON Schema"),
        ({"type": "object", "required": "path"}, "not valid JSON Schema"),
        ({"type": "string"}, "not an object"),
        (["type", "object"], "not a JSON object"),
    ],
)
def test_a_schema_must_be_json_schema_of_an_object(schema: Any, problem: str | None) -> None:
    found = schema_problem(schema)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def listed(name: str, schema: Any = OBJECT, **fields: Any) -> mcp.Tool:
    return mcp.Tool(name=name, input_schema=schema, **fields)


async def never(tool: str, arguments: dict[str, Any], ctx: ToolContext) -> mcp.CallToolResult:
    raise AssertionError("not called")


def test_tools_are_namespaced_and_bad_ones_refused_with_why() -> None:
    server = SERVER.model_copy(update={"tools": {"write": McpToolSettings(timeout_s=2)}})
    listing = tools_of(
        server,
        [
            listed(
                "read",
                description="Read a file.",
                annotations=mcp.ToolAnnotations(read_only_hint=True),
            ),
            listed("write"),
            listed("bad", {"type": "object", "properties": {"x": {"type": 12}}}),
            listed("dotted.name"),
        ],
        never,
    )
    assert sorted(listing.tools) == ["files__read", "files__write"]
    read, write = listing.tools["files__read"], listing.tools["files__write"]
    assert (read.effect, read.timeout_s, read.description) == (Effect.PURE, 7, "Read a file.")
    assert (write.effect, write.timeout_s) == (Effect.SIDE_EFFECT, 2)
    assert read.spec().parameters == OBJECT
    assert "not valid JSON Schema" in listing.rejected["files__bad"]
    assert "not a tool name models accept" in listing.rejected["files__dotted.name"]


async def test_arguments_are_checked_against_the_servers_schema_before_the_call() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    async def call(tool: str, arguments: dict[str, Any], ctx: ToolContext) -> mcp.CallToolResult:
        sent.append((tool, arguments))
        return mcp.CallToolResult(content=[mcp.TextContent(text="ok")])

    read = tools_of(SERVER, [listed("read")], call).tools["files__read"]
    ctx = ToolContext(run_id="r", call_id="c")
    bad = await run_tool(read, {"path": 3}, ctx)
    assert bad.error is not None
    assert bad.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert "path: 3 is not of type 'string'" in bad.error.message
    good = await run_tool(read, {"path": "/a"}, ctx)
    assert good.output == "ok"
    assert sent == [("read", {"path": "/a"})]


def test_a_result_is_rendered_as_text() -> None:
    result = mcp.CallToolResult(
        content=[
            mcp.TextContent(text="one"),
            mcp.ImageContent(data="aGVsbG8=", mime_type="image/png"),
            mcp.ResourceLink(name="f", uri="file:///f"),
        ]
    )
    assert (
        render("t", result, 1000)
        == "one\n[image/png content of 5 bytes not shown]\n[resource file:///f]"
    )


def test_a_structured_result_without_content_is_its_json() -> None:
    result = mcp.CallToolResult(content=[], structured_content={"n": 1})
    assert render("t", result, 100) == '{"n": 1}'


def test_an_error_result_and_an_oversized_one_are_failures() -> None:
    error = mcp.CallToolResult(content=[mcp.TextContent(text="no such file")], is_error=True)
    with pytest.raises(ToolFailure) as failed:
        render("files__read", error, 100)
    assert failed.value.kind is ToolErrorKind.EXECUTION
    assert failed.value.message == "files__read failed: no such file"
    assert not failed.value.retryable
    big = mcp.CallToolResult(content=[mcp.TextContent(text="x" * 11)])
    with pytest.raises(ToolFailure) as too_large:
        render("files__read", big, 10)
    assert too_large.value.kind is ToolErrorKind.TOO_LARGE
    assert "11 characters, more than the 10" in too_large.value.message
