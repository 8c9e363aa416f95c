"""Guards: policies run around an agent's model and tool calls (docs/decisions/0028).

A guard is a `Guard` subclass offered by an installed package under the entry point group
`loopline.guards`; a profile names the guards it runs, with their options
(`[agents.NAME.guards.G]`). Each hook a guard implements looks at one thing and answers with a
verdict: `Pass` (as it is), `Rewrite` (this instead: redacted text, edited arguments) or
`Trip` (stop, saying why; `tell` the model, or `fail` the run). The planner runs the model
hooks, the tool-executor the tool hooks, each through the profile's `Guards`, in the order
the profile names them; the first trip stops the rest.

A guard that raises, hangs or answers with something else is a trip too: it fails closed,
since a guard that could not look cannot let anything through.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args

from loopline_events import GuardHook, GuardTripped, Message, ModelDecided, ToolCall
from pydantic import BaseModel, ConfigDict, ValidationError

from loopline_runtime._errors import ConfigurationError
from loopline_runtime._profiles import AgentProfile
from loopline_runtime._secrets import redact

ENTRY_POINT_GROUP = "loopline.guards"
"""Packages offer guards under this entry point group; the entry point's name is the guard's."""
HOOK_TIMEOUT_S = 30.0
"""Longest a guard may look at one thing (redacting the largest output a tool may give takes
seconds); past it, the guard is taken to have failed."""
REASON_CHARS = 4_000
"""Most of a trip's reason an event carries."""

log = logging.getLogger("loopline.guards")

T = TypeVar("T")
Action = Literal["tell", "fail"]
"""What follows a trip: `tell` the model why, or `fail` the run (reason `guard`)."""


@dataclass(frozen=True, slots=True)
class Pass:
    """The guard lets it through as it is."""


PASS = Pass()


@dataclass(frozen=True, slots=True)
class Rewrite(Generic[T]):
    """The guard lets it through changed: `value` stands for what the hook was given."""

    value: T


@dataclass(frozen=True, slots=True)
class Trip:
    """The guard stops it: `reason` is shown to the model and to people; `action` says
    whether the model is told (`tell`) or the run fails (`fail`)."""

    reason: str
    action: Action = "tell"


Verdict = Pass | Rewrite[T] | Trip
"""A hook's answer."""


@dataclass(frozen=True, slots=True)
class GuardContext:
    """Whose call a hook looks at."""

    run_id: str
    tenant: str
    agent: str


class GuardOptions(BaseModel):
    """A guard's options, from its profile table; a key the guard does not know is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Guard:
    """Base of every guard: each hook passes unless a subclass says otherwise.

    A subclass declares its options as a `GuardOptions` model in `Options` and takes an
    instance of it in `__init__`. A hook's verdict must depend only on what it is given, so
    a redelivered event meets the same verdict.
    """

    Options: ClassVar[type[GuardOptions]] = GuardOptions

    def __init__(self, options: GuardOptions) -> None:
        self.options = options

    async def before_model(
        self, messages: tuple[Message, ...], at: GuardContext
    ) -> Verdict[tuple[Message, ...]]:
        """Look at the messages a model is about to be sent; a rewrite sends others."""
        return PASS

    async def after_model(self, decision: ModelDecided, at: GuardContext) -> Verdict[ModelDecided]:
        """Look at a model's decision before it is published."""
        return PASS

    async def before_tool(
        self, call: ToolCall, effect: str, at: GuardContext
    ) -> Verdict[dict[str, Any]]:
        """Look at a call before it runs (`effect`: its tool's effect class); a rewrite gives
        the arguments it runs with."""
        return PASS

    async def after_tool(self, call: ToolCall, output: str, at: GuardContext) -> Verdict[str]:
        """Look at a call's output before anyone reads it; a rewrite is what they read."""
        return PASS


@dataclass(frozen=True, slots=True)
class Tripped:
    """A guard stopped something: which, where, why, and what follows."""

    guard: str
    hook: GuardHook
    reason: str
    action: Action

    def event(self, call: ToolCall | None = None) -> GuardTripped:
        """The `GuardTripped` that records it (naming `call`, for a tool hook); a reason that
        quotes what the guard saw keeps the secrets it may hold out of the event."""
        return GuardTripped(
            guard=self.guard[:128],
            hook=self.hook,
            reason=redact(self.reason)[:REASON_CHARS],
            action=self.action,
            call_id=call.call_id if call is not None else None,
            tool=call.tool if call is not None else None,
        )


CRASH_ACTION: dict[GuardHook, Action] = {
    GuardHook.BEFORE_MODEL: "fail",
    GuardHook.AFTER_MODEL: "fail",
    GuardHook.BEFORE_TOOL: "tell",
    GuardHook.AFTER_TOOL: "tell",
}
"""What follows a guard's own failure: a tool call fails (the model may do without it); a
model step cannot be taken without its guards, and asking again would meet the same failure,
so the run fails."""


class Guards:
    """A profile's guards, in the order it names them, run hook by hook."""

    def __init__(self, guards: Sequence[tuple[str, Guard]] = ()) -> None:
        self.guards = tuple(guards)

    def __bool__(self) -> bool:
        return bool(self.guards)

    def names(self) -> list[str]:
        """The guards' names, in order."""
        return [name for name, _ in self.guards]

    async def before_model(
        self, messages: tuple[Message, ...], at: GuardContext
    ) -> tuple[Message, ...] | Tripped:
        """The messages to send, as the guards left them; or the trip that stops the step."""
        return await self._run(
            GuardHook.BEFORE_MODEL, messages, lambda g, v: g.before_model(v, at), at
        )

    async def after_model(self, decision: ModelDecided, at: GuardContext) -> ModelDecided | Tripped:
        """The decision to publish; or the trip that stands for it."""
        return await self._run(
            GuardHook.AFTER_MODEL, decision, lambda g, v: g.after_model(v, at), at
        )

    async def before_tool(
        self, call: ToolCall, effect: str, at: GuardContext
    ) -> ToolCall | Tripped:
        """The call to run, with the arguments the guards left; or the trip that refuses it."""
        arguments = await self._run(
            GuardHook.BEFORE_TOOL,
            call.arguments,
            lambda g, v: g.before_tool(call.model_copy(update={"arguments": v}), effect, at),
            at,
        )
        if isinstance(arguments, Tripped):
            return arguments
        if arguments is call.arguments:
            return call
        return call.model_copy(update={"arguments": arguments})

    async def after_tool(self, call: ToolCall, output: str, at: GuardContext) -> str | Tripped:
        """The output the run is told; or the trip that withholds it."""
        return await self._run(
            GuardHook.AFTER_TOOL, output, lambda g, v: g.after_tool(call, v, at), at
        )

    async def _run(
        self,
        hook: GuardHook,
        value: T,
        ask: Callable[[Guard, T], Awaitable[Verdict[T]]],
        at: GuardContext,
    ) -> T | Tripped:
        for name, guard in self.guards:
            try:
                async with asyncio.timeout(HOOK_TIMEOUT_S):
                    verdict = await ask(guard, value)
                if isinstance(verdict, Trip) and verdict.action not in get_args(Action):
                    raise TypeError(f"a trip's action must be tell or fail: {verdict.action!r}")
                if not isinstance(verdict, Pass | Rewrite | Trip):
                    raise TypeError(f"a hook must answer Pass, Rewrite or Trip: {verdict!r}")
            except Exception as exc:
                log.exception("run %s: guard %s failed in %s", at.run_id, name, hook.value)
                problem = "it took too long" if isinstance(exc, TimeoutError) else repr(exc)
                reason = f"guard {name!r} failed, so nothing passes it: {redact(problem)}"
                return Tripped(name, hook, reason, CRASH_ACTION[hook])
            if isinstance(verdict, Trip):
                log.info("run %s: guard %s tripped in %s", at.run_id, name, hook.value)
                return Tripped(name, hook, verdict.reason, verdict.action)
            if isinstance(verdict, Rewrite):
                value = verdict.value
        return value


class GuardError(ConfigurationError):
    """A profile names a guard that is not installed, or gives one options it refuses."""


GuardKinds = Mapping[str, Callable[[], type[Guard]]]
"""Installed guards by name, each loaded when first named."""


def installed_guards(group: str = ENTRY_POINT_GROUP) -> dict[str, Callable[[], type[Guard]]]:
    """The guards installed packages offer under `group`, by name; each is imported only when
    a profile names it."""
    kinds: dict[str, Callable[[], type[Guard]]] = {}
    for entry_point in importlib.metadata.entry_points(group=group):
        if entry_point.name in kinds:
            raise GuardError(f"two installed packages offer a guard named {entry_point.name!r}")
        kinds[entry_point.name] = _loader(entry_point, group)
    return kinds


def _loader(entry_point: importlib.metadata.EntryPoint, group: str) -> Callable[[], type[Guard]]:
    def load() -> type[Guard]:
        where = f"guard {entry_point.name!r} ({entry_point.value}, group {group!r})"
        try:
            loaded = entry_point.load()
        except Exception as exc:
            raise GuardError(f"{where} cannot be loaded: {exc!r}") from exc
        if not (isinstance(loaded, type) and issubclass(loaded, Guard)):
            raise GuardError(f"{where} is not a Guard subclass: {loaded!r}")
        return loaded

    return load


def load_guards(
    profiles: Mapping[str, AgentProfile],
    kinds: GuardKinds | None = None,
    source: str = "agents file",
) -> dict[str, Guards]:
    """Each profile's guards, built with their options (`kinds`: the installed guards).

    A guard no installed package offers, or options it refuses, is a `GuardError` naming
    every such profile and guard: a service refuses to start rather than run unguarded.
    """
    kinds = installed_guards() if kinds is None else kinds
    problems: list[str] = []
    built: dict[str, Guards] = {}
    for agent, profile in sorted(profiles.items()):
        guards: list[tuple[str, Guard]] = []
        for name, options in profile.guards.items():
            where = f"agent {agent!r}, guard {name!r}"
            if name not in kinds:
                known = ", ".join(sorted(kinds)) or "none"
                problems.append(
                    f"{where}: no installed package offers it (installed guards: {known})"
                )
                continue
            try:
                kind = kinds[name]()
                guards.append((name, kind(kind.Options.model_validate(options))))
            except ValidationError as exc:
                problems.append(f"{where}: {_option_problems(exc)}")
            except (GuardError, ValueError, TypeError) as exc:
                problems.append(f"{where}: {exc}")
        built[agent] = Guards(guards)
    if problems:
        raise GuardError(f"{source}: " + "; ".join(problems))
    return built


def _option_problems(exc: ValidationError) -> str:
    lines = []
    for e in exc.errors():
        where = ".".join(map(str, e["loc"])) or "options"
        got = f" (got {e['input']!r})" if "input" in e and e["loc"] else ""
        lines.append(f"option {where}: {str(e['msg']).removeprefix('Value error, ')}{got}")
    return redact("; ".join(lines))
