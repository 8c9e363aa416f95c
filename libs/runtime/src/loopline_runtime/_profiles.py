"""Agent profiles: who an agent is (prompt, model), what it may use (tools) and its limits."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopline_runtime._errors import ConfigurationError
from loopline_runtime._mcp_servers import McpServerConfig, offered_by_servers, parse_mcp_servers

AGENTS_FILE_VARIABLE = "LOOPLINE_AGENTS_FILE"


class ApprovalPolicy(BaseModel):
    """Which of an agent's tool calls wait for a person's approval before they run
    (`[agents.NAME.approvals]`), and what happens when no one decides in time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tools: tuple[str, ...] = Field(default=(), description="Tools held, by name.")
    effects: tuple[Literal["pure", "idempotent", "side_effect"], ...] = Field(
        default=(),
        description="Tools held by effect class (`side_effect`: every tool that changes the "
        "world and may not be repeated).",
    )
    timeout_s: float = Field(
        default=3600.0, gt=0, le=30 * 86400, description="How long a held call waits."
    )
    on_timeout: Literal["deny", "fail"] = Field(
        default="deny",
        description="`deny`: the model is told no one approved the call; `fail`: the run fails.",
    )
    approvers: tuple[str, ...] = Field(
        default=(),
        description="Signing key ids that may decide, besides operators'; empty: any key "
        "that acts for the run's tenant.",
    )

    def holds(self, tool: str, effect: str) -> str | None:
        """Why a call of `tool` (of effect class `effect`) waits for approval; None: it runs."""
        if tool in self.tools:
            return f"the profile holds {tool!r} for approval"
        if effect in self.effects:
            return f"the profile holds every {effect} tool for approval"
        return None


class AgentProfile(BaseModel):
    """One agent profile, as declared in an agents file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="The profile's name; goals name it in `agent`.")
    description: str = Field(default="", description="What this agent is for.")
    system_prompt: str = Field(description="The system message of every context.")
    model: str = Field(
        default="demo",
        description="`demo`, `openai`, `openai:<model>`, `anthropic` or `anthropic:<model>`.",
    )
    fallback_models: tuple[str, ...] = Field(
        default=(),
        description="Models to ask, in order, when the one before is unavailable after its "
        "retries (rate limited, overloaded, down); the decision records which one answered.",
    )
    on_quota: Literal["pause", "fail"] = Field(
        default="pause",
        description="When the run's tenant is over a quota (limits file): `pause` waits until "
        "the window has room again; `fail` ends the run with `quota_exceeded`.",
    )
    tools: tuple[str, ...] = Field(
        default=(),
        description="Tools the agent may call: built-in and installed tools by name, an MCP "
        "server's tool as `SERVER__TOOL`, every tool of one as `SERVER__*`.",
    )
    max_steps: int = Field(default=10, ge=1, le=10_000, description="Most model steps per run.")
    deadline_s: float = Field(default=300.0, gt=0, description="Wall-clock limit of a run.")
    step_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait for a run's next step (a decision, a tool result, the next "
        "context) before recovery's watchdog re-drives the step; after its re-drives are "
        "spent, the run fails as `stalled`.",
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Most tokens (read and written) a run may spend."
    )
    max_cost_usd: float | None = Field(
        default=None, ge=0, description="Most a run may spend, in USD, priced by `price`."
    )
    price: str = Field(
        default="",
        description="Entry of memory's price table that prices this agent's tokens; "
        "empty: the entry named like the model.",
    )
    context_budget_tokens: int = Field(
        default=32_000,
        ge=64,
        le=10_000_000,
        description="Most tokens of a context (counted with the o200k_base tokenizer); older "
        "steps are compacted to stay under it.",
    )
    compaction: Literal["truncate", "summarize"] = Field(
        default="truncate",
        description="What stands in for older steps a full context leaves out: `truncate`, a "
        "marker saying so; `summarize`, their summary, written by the run's model (a model "
        "call of its own, recorded like any decision).",
    )
    no_progress_repeats: int = Field(
        default=3,
        ge=2,
        le=100,
        description="Rounds of the same calls with the same results that count as no progress.",
    )
    on_no_progress: Literal["nudge", "fail"] = Field(
        default="nudge",
        description="`nudge`: tell the model once, then fail if it goes on; `fail`: fail at once.",
    )
    recall_limit: int = Field(
        default=0,
        ge=0,
        le=20,
        description="Long-term memories recalled into a run's first context (0: none).",
    )
    delegates: tuple[str, ...] = Field(
        default=(),
        description="Agents this one may hand a sub-task to with the `delegate` tool (which its "
        "`tools` must list): each sub-task is a child run of that agent.",
    )
    max_delegation_depth: int = Field(
        default=2,
        ge=1,
        le=10,
        description="How deep a chain of sub-tasks may go under a run a user started: a run at "
        "this depth may not delegate further.",
    )
    approvals: ApprovalPolicy | None = Field(
        default=None, description="Tool calls that wait for a person's approval (none: all run)."
    )
    guards: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Guards run around this agent's model and tool calls, by name (entry "
        "points of group `loopline.guards`), each with its options (`[agents.NAME.guards.G]`).",
    )


class ProfileError(ConfigurationError):
    """An agents file that cannot be read or is invalid."""


def parse_profiles(text: str, source: str = "agents file") -> dict[str, AgentProfile]:
    """Profiles by name from the TOML text of an agents file."""
    try:
        tables = tomllib.loads(text).get("agents", {})
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None
    profiles = {}
    for name, table in tables.items():
        try:
            profiles[name] = AgentProfile(name=name, **table)
        except (ValidationError, TypeError) as exc:
            raise ProfileError(f"{source}: agent {name!r}: {exc}") from None
    if not profiles:
        raise ProfileError(f"{source}: declares no [agents.NAME] table")
    check_delegates(profiles, source)
    return profiles


def check_delegates(profiles: Mapping[str, AgentProfile], source: str) -> None:
    """Raise a `ProfileError` for a profile that delegates to an agent the file lacks, names
    delegates without the `delegate` tool, or has the tool without delegates."""
    problems = []
    for name, profile in sorted(profiles.items()):
        unknown = [d for d in profile.delegates if d not in profiles]
        if unknown:
            problems.append(
                f"agent {name!r} delegates to {', '.join(map(repr, unknown))}, not in it"
            )
        if profile.delegates and "delegate" not in profile.tools:
            problems.append(f"agent {name!r} names delegates but does not list the delegate tool")
        if "delegate" in profile.tools and not profile.delegates:
            problems.append(f"agent {name!r} lists the delegate tool but names no delegates")
    if problems:
        raise ProfileError(f"{source}: " + "; ".join(problems))


def agents_file(path: Path | None = None) -> Path | None:
    """`path`, else LOOPLINE_AGENTS_FILE; None for the profiles shipped here."""
    return path or (Path(p) if (p := os.environ.get(AGENTS_FILE_VARIABLE)) else None)


def _agents_text(path: Path | None) -> tuple[str, str]:
    """The text of the agents file and how to name it in errors."""
    chosen = agents_file(path)
    if chosen is None:
        shipped = resources.files("loopline_runtime").joinpath("agents.toml").read_text()
        return shipped, "built-in agents.toml"
    try:
        return chosen.read_text(), str(chosen)
    except OSError as exc:
        raise ProfileError(f"cannot read agents file {chosen}: {exc}") from None


def load_profiles(
    path: Path | None = None, *, tools: Collection[str] | None = None
) -> Mapping[str, AgentProfile]:
    """The profiles of `path`, else of LOOPLINE_AGENTS_FILE, else the ones shipped here.

    With `tools` (the names of the tools this installation offers), a profile naming any
    other tool is a `ProfileError`: an agent would be shown fewer tools than it was given.
    The tools of the MCP servers the same file declares count as offered.
    """
    text, source = _agents_text(path)
    profiles = parse_profiles(text, source)
    if tools is not None:
        check_tools(profiles, tools, source, parse_mcp_servers(text, source))
    return profiles


def load_mcp_servers(path: Path | None = None) -> dict[str, McpServerConfig]:
    """The MCP servers the agents file declares (`[mcp_servers.NAME]`), by name."""
    text, source = _agents_text(path)
    return parse_mcp_servers(text, source)


def check_tools(
    profiles: Mapping[str, AgentProfile],
    offered: Collection[str],
    source: str,
    servers: Mapping[str, McpServerConfig] | None = None,
) -> None:
    """Raise a `ProfileError` naming every profile that lists a tool not in `offered` nor of
    one of the MCP `servers`."""
    problems = [
        f"agent {name!r} lists tool {tool!r}, which no installed package provides"
        for name, profile in sorted(profiles.items())
        for tool in profile.tools
        if tool not in offered and not offered_by_servers(tool, servers or {})
    ]
    if problems:
        installed = ", ".join(sorted(offered)) or "none"
        raise ProfileError(
            f"{source}: " + "; ".join(problems) + f" (installed tools: {installed}). "
            "Install the package that offers it (see the README's 'Your own tools') "
            "or remove it from the profile."
        )
