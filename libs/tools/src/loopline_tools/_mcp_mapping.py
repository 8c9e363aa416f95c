"""From what an MCP server lists and answers to what Loopline knows: pure rules, no I/O.

A listed tool becomes a `Tool` named `SERVER__TOOL` whose effect class comes from the
server's annotations (or the profile's word), whose schema must be valid JSON Schema, and
whose result is rendered as the text the model reads.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jsonschema
import mcp_types as mcp
from loopline_events import ToolErrorKind
from loopline_runtime import McpServerConfig, mcp_tool_name
from pydantic import BaseModel, ConfigDict

from loopline_tools._core import _NAME, RetryPolicy, Tool, ToolContext, ToolFailure
from loopline_tools._core import Effect as Effect

CallMcp = Callable[[str, dict[str, Any], ToolContext], Awaitable[mcp.CallToolResult]]
"""`await call(tool_name_on_the_server, arguments, ctx)`: the server's answer."""


class McpArguments(BaseModel):
    """Any JSON object: an MCP tool's arguments are checked against its own JSON Schema."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class Listing:
    """A server's tools as Loopline knows them, and the ones it refused, with why."""

    tools: dict[str, Tool]
    rejected: dict[str, str]


def effect_of(annotations: mcp.ToolAnnotations | None, override: str | None = None) -> Effect:
    """The profile's word, else the server's hints: read-only is pure, idempotent is
    idempotent, anything else (no hint at all included) may do its effect twice."""
    if override is not None:
        return Effect(override)
    if annotations is not None and annotations.read_only_hint:
        return Effect.PURE
    if annotations is not None and annotations.idempotent_hint:
        return Effect.IDEMPOTENT
    return Effect.SIDE_EFFECT


def schema_problem(schema: object) -> str | None:
    """Why `schema` cannot stand for a tool's arguments, or None when it can."""
    if not isinstance(schema, dict):
        return f"its input schema is a {type(schema).__name__}, not a JSON object"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the root"
        return f"its input schema is not valid JSON Schema (at {where}: {exc.message})"
    if schema.get("type", "object") != "object":
        return f"its input schema describes a {schema.get('type')!r}, not an object"
    return None


def arguments_problem(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    """Why `arguments` do not fit the tool's schema, or None when they do."""
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_class(schema).iter_errors(arguments), key=lambda e: list(e.path))
    if not errors:
        return None
    problems = [f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in errors[:10]]
    return "; ".join(problems)


def tools_of(server: McpServerConfig, listed: list[mcp.Tool], call: CallMcp) -> Listing:
    """The Loopline tools of a server's listing; those that cannot be offered, with why."""
    tools: dict[str, Tool] = {}
    rejected: dict[str, str] = {}
    for listed_tool in listed:
        name = mcp_tool_name(server.name, listed_tool.name)
        problem = _name_problem(name) or schema_problem(listed_tool.input_schema)
        if problem is not None:
            rejected[name] = f"MCP server {server.name!r} lists {listed_tool.name!r}, but {problem}"
            continue
        tools[name] = _tool(server, listed_tool, name, call)
    return Listing(tools, rejected)


def _name_problem(name: str) -> str | None:
    if _NAME.match(name):
        return None
    return f"{name!r} is not a tool name models accept ({_NAME.pattern})"


def _tool(server: McpServerConfig, listed: mcp.Tool, name: str, call: CallMcp) -> Tool:
    settings = server.tools.get(listed.name)
    effect = effect_of(listed.annotations, settings.effect if settings else None)
    schema = dict(listed.input_schema)
    remote = listed.name
    limit = server.max_output_chars

    async def run(args: McpArguments, ctx: ToolContext) -> str:
        arguments = args.model_dump()
        problem = arguments_problem(schema, arguments)
        if problem is not None:
            raise ToolFailure(
                ToolErrorKind.INVALID_ARGUMENTS, f"invalid arguments for {name}: {problem}"
            )
        return render(name, await call(remote, arguments, ctx), limit)

    description = listed.description or listed.title or f"{listed.name} (MCP server {server.name})"
    return Tool(
        name=name,
        description=description,
        args_model=McpArguments,
        fn=run,
        effect=effect,
        timeout_s=settings.timeout_s if settings and settings.timeout_s else server.timeout_s,
        retry=RetryPolicy(),
        parameters=schema,
    )


def render(name: str, result: mcp.CallToolResult, limit: int) -> str:
    """The text the model reads of a tool's result; a `ToolFailure` for an error result or
    one longer than `limit` characters."""
    parts = [_content_text(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    if len(text) > limit:
        message = (
            f"{name} answered {len(text)} characters, more than the {limit} its server is "
            "allowed (max_output_chars); ask for less"
        )
        raise ToolFailure(ToolErrorKind.TOO_LARGE, message)
    if result.is_error:
        raise ToolFailure(ToolErrorKind.EXECUTION, f"{name} failed: {text or 'no detail given'}")
    return text


def _content_text(block: mcp.ContentBlock) -> str:
    if isinstance(block, mcp.TextContent):
        return block.text
    if isinstance(block, mcp.ImageContent | mcp.AudioContent):
        size = len(base64.b64decode(block.data, validate=False))
        return f"[{block.mime_type} content of {size} bytes not shown]"
    if isinstance(block, mcp.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, mcp.TextResourceContents):
            return resource.text
        return f"[binary resource {resource.uri} not shown]"
    if isinstance(block, mcp.ResourceLink):
        return f"[resource {block.uri}]"
    return f"[{type(block).__name__} not shown]"
