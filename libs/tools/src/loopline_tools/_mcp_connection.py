"""Connections to MCP servers, through the official `mcp` SDK's client.

Each server has one connection, kept by a task of its own (the SDK's transports must be
opened and closed by the same task): it connects, lists the tools, listens for the server's
word that they changed, and when the connection is lost (a stdio server that died, an HTTP
server restarted) connects again after a pause that doubles up to `MAX_PAUSE_S`, or at once
when a call is waiting for it. The last
listing is kept while a server is away, so a call to one of its tools is a clear, retryable
"unreachable" rather than an unknown tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx2
import mcp_types as mcp
from loopline_events import ToolErrorKind
from loopline_runtime import McpServerConfig, mcp_tool_name, redact
from mcp import Client
from mcp.client import Transport
from mcp.client._transport import TransportStreams
from mcp.client.session import IncomingMessage
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from loopline_tools._core import Effect, ToolContext, ToolFailure
from loopline_tools._mcp_mapping import Listing, tools_of

log = logging.getLogger("loopline.tools.mcp")

IDEMPOTENCY_KEY = "loopline/idempotency-key"
"""The `_meta` entry of every call that carries the call's idempotency key (the same for every
retry and redelivery of one call), for servers that can recognise a repeat."""

CLOSE_GRACE_S = 10.0
"""How long a closing connection is given to stop its server before it is asked again."""

FIRST_PAUSE_S = 0.2
MAX_PAUSE_S = 10.0
"""Pauses between attempts to reach a server that is away."""


class McpConnection:
    """One MCP server: its tools as last listed, and calls to them."""

    def __init__(
        self,
        config: McpServerConfig,
        on_change: Callable[[], None] = lambda: None,
        *,
        mode: str = "auto",
    ) -> None:
        self.config = config
        self.mode = mode
        """The SDK's protocol choice: `auto` (the newest both sides speak) or `legacy` (the
        initialize handshake of protocols before 2026-07-28)."""
        self.listing = Listing({}, {})
        self._on_change = on_change
        self._client: Client | None = None
        self._up = asyncio.Event()
        self._lost = asyncio.Event()
        self._changed = asyncio.Event()
        self._wanted = asyncio.Event()
        self._problem = "not connected yet"
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin connecting in the background (again, if the keeper stopped)."""
        if self._closing:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep(), name=f"mcp:{self.config.name}")

    async def ready(self, timeout: float | None = None) -> bool:
        """Wait until connected and listed, at most `timeout` seconds; whether it is."""
        self.start()
        if not self._up.is_set():
            self._wanted.set()
        try:
            async with asyncio.timeout(timeout or self.config.connect_timeout_s):
                await self._up.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Disconnect (a stdio server is stopped) and stop reconnecting."""
        self._closing = True
        self._lose("the connection was closed")
        task, self._task = self._task, None
        if task is None:
            return
        # The SDK's task groups may fold a cancellation that meets a failing transport into
        # that failure: the keeper then sees an error, not its end, and ends on the flag. A
        # stdio server is given its grace period to exit (the SDK waits 2 s, then kills it)
        # before the keeper is asked again.
        task.cancel()
        while not task.done():
            await asyncio.wait({task}, timeout=CLOSE_GRACE_S)
            task.cancel()

    async def call(
        self, tool: str, arguments: dict[str, Any], ctx: ToolContext
    ) -> mcp.CallToolResult:
        """The server's answer to one call; a `ToolFailure` saying why there is none."""
        name = self.config.name
        if not await self.ready():
            # Nothing was sent: trying again later is safe whatever the tool's effect.
            message = f"MCP server {name!r} is unreachable: {self._problem}"
            raise ToolFailure(ToolErrorKind.EXECUTION, redact(message), retryable=True)
        client = self._client
        if client is None:  # lost between the wait and now: nothing was sent
            message = f"MCP server {name!r} is unreachable: {self._problem}"
            raise ToolFailure(ToolErrorKind.EXECUTION, redact(message), retryable=True)
        try:
            meta = cast(mcp.RequestParamsMeta, {IDEMPOTENCY_KEY: ctx.idempotency_key})
            return await client.call_tool(tool, arguments, meta=meta)
        except MCPError as exc:
            if exc.code not in (mcp.CONNECTION_CLOSED, mcp.REQUEST_TIMEOUT):
                raise _refused(name, tool, exc) from None
            self._lose(f"the connection closed during a call to {tool}")
            raise self._failed(tool, exc) from None
        except Exception as exc:  # a transport that broke mid-call
            self._lose(_describe(exc))
            raise self._failed(tool, exc) from None

    @property
    def up(self) -> bool:
        """Whether the server is connected and its tools listed."""
        return self._up.is_set()

    @property
    def problem(self) -> str:
        """Why the server was last unreachable."""
        return self._problem

    def _failed(self, tool: str, exc: Exception) -> ToolFailure:
        """The failure of a call that got no answer: retryable unless the tool may already
        have done its effect."""
        listed = self.listing.tools.get(mcp_tool_name(self.config.name, tool))
        effect = listed.effect if listed is not None else Effect.SIDE_EFFECT
        message = f"MCP server {self.config.name!r} gave no answer to {tool}: {exc}"
        if effect is Effect.SIDE_EFFECT:
            message += "; it has side effects, which may or may not have happened"
            return ToolFailure(ToolErrorKind.UNKNOWN_OUTCOME, redact(message))
        return ToolFailure(ToolErrorKind.EXECUTION, redact(message), retryable=True)

    def _lose(self, why: str) -> None:
        self._problem = why
        self._up.clear()
        self._lost.set()

    async def _keep(self) -> None:
        """Connect, list, watch; when the connection is lost, connect again after a pause."""
        pause = FIRST_PAUSE_S
        while not self._closing:
            self._lost.clear()
            try:
                async with self._open() as client:
                    self._client = client
                    await self._list(client)
                    self._up.set()
                    pause = FIRST_PAUSE_S
                    log.info(
                        "MCP server %s: connected, %d tools",
                        self.config.name,
                        len(self.listing.tools),
                    )
                    await self._watch(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._problem = redact(_describe(exc))
                log.warning("MCP server %s: %s", self.config.name, self._problem)
            finally:
                self._up.clear()
                self._client = None
            if self._closing:
                return
            # A call waiting for the server cuts the pause short: it tries again now.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._wanted.wait()
            self._wanted.clear()
            pause = min(pause * 2, MAX_PAUSE_S)

    def _open(self) -> Client:
        config = self.config
        server: StdioServerParameters | Transport
        if config.command is not None:
            server = StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env=config.resolved_env() or None,
                cwd=config.cwd,
            )
        else:
            assert config.url is not None
            server = _http_streams(config)
        return Client(
            server,
            message_handler=self._heard,
            cache=None,
            read_timeout_seconds=config.connect_timeout_s,
            mode=self.mode,
        )

    async def _list(self, client: Client) -> None:
        """Fetch every page of the server's tools and make them the listing."""
        listed: list[mcp.Tool] = []
        cursor: str | None = None
        async with asyncio.timeout(self.config.connect_timeout_s):
            while True:
                page = await client.list_tools(cursor=cursor)
                listed.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
        self.listing = tools_of(self.config, listed, self.call)
        for problem in self.listing.rejected.values():
            log.error("%s: the tool is not offered", problem)
        self._on_change()

    async def _watch(self, client: Client) -> None:
        """Relist on every change the server tells of, until the connection is lost (the
        transport ends, or a call found it broken)."""
        modern = client.protocol_version in MODERN_PROTOCOL_VERSIONS
        relist = asyncio.ensure_future(self._listen(client) if modern else self._hear(client))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait((relist, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (relist, lost):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
        raise ConnectionError(self._problem)

    async def _listen(self, client: Client) -> None:
        """From the 2026-07-28 protocol on, changes are told on a stream the client opens."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    await self._list(client)
        except Exception as exc:
            self._lose(_describe(exc))
            return
        self._lose("the server closed its stream of changes")

    async def _hear(self, client: Client) -> None:
        """Before it, they come as notifications (`_heard` wakes this)."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._list(client)

    async def _heard(self, message: IncomingMessage) -> None:
        """A notification or a transport error: neither may be waited for here (this runs in
        the session's receive loop), so the watcher is woken instead."""
        if isinstance(message, mcp.ToolListChangedNotification):
            self._changed.set()
        elif isinstance(message, Exception):
            log.warning("MCP server %s sent what is not MCP: %s", self.config.name, message)
            self._lose(f"the server sent what is not MCP ({message})")


def _refused(server: str, tool: str, exc: MCPError) -> ToolFailure:
    """The failure of a call the server answered with a protocol error (it did not run)."""
    kind = (
        ToolErrorKind.INVALID_ARGUMENTS
        if exc.code == mcp.INVALID_PARAMS
        else ToolErrorKind.EXECUTION
    )
    message = f"MCP server {server!r} refused the call to {tool}: {exc}"
    return ToolFailure(kind, redact(message))


def _describe(exc: BaseException) -> str:
    """What went wrong, from the innermost error of the SDK's task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


@contextlib.asynccontextmanager
async def _http_streams(config: McpServerConfig) -> AsyncIterator[TransportStreams]:
    """The streamable HTTP transport, its requests carrying the configured headers."""
    assert config.url is not None
    # No read timeout: the server holds its event stream open; calls have their own deadline.
    timeout = httpx2.Timeout(config.connect_timeout_s, read=None)
    # A result is at most `max_output_chars`; JSON escaping may double it, and a longer event
    # is refused by the transport before it is read whole.
    largest_event = 4 * config.max_output_chars + 64 * 1024
    async with (
        httpx2.AsyncClient(headers=config.resolved_headers(), timeout=timeout) as http,
        streamable_http_client(
            config.url, http_client=http, max_sse_event_size=largest_event
        ) as streams,
    ):
        yield streams
