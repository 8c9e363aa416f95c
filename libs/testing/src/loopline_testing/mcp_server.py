"""A small MCP server for the tests, written with the `mcp` SDK's server API (`MCPServer`).

Run it over stdio (`python -m loopline_testing.mcp_server --effects FILE`) or over streamable
HTTP (`... --http PORT`). Its tools exercise what a Loopline executor must survive:

- `echo` and `add` are read-only (pure), `upsert` is idempotent, `record` has side effects and
  appends one line per execution to the effects file (`--effects`): a count above one for a
  call is a side effect done twice;
- `crash` ends the server's process mid-call, `slow` sleeps, `fail` answers an error
  (`isError`), `huge` answers megabytes, `garble` writes a line that is not JSON where its
  answer should be;
- `unlock` adds the tool `secret` and tells the client the tool list changed;
- `broken` is listed with an input schema that is not valid JSON Schema.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from loopline_runtime import McpServerConfig
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True)
IDEMPOTENT = ToolAnnotations(read_only_hint=False, idempotent_hint=True)


def build(effects: Path | None, *, stdio: bool) -> MCPServer:
    """The test server; side effects are appended to `effects` (one JSON line each)."""
    server: MCPServer = MCPServer("loopline-test")

    @server.tool(annotations=READ_ONLY)
    def echo(text: str) -> str:
        """Return the text given."""
        return text

    @server.tool(annotations=READ_ONLY)
    def add(a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)

    @server.tool(annotations=IDEMPOTENT)
    def upsert(key: str, value: str, ctx: Context) -> str:
        """Set a key to a value (setting it again changes nothing); says which idempotency
        key the call carried."""
        meta = ctx.request_context.meta or {}
        return f"{key}={value} (idempotency key {meta.get('loopline/idempotency-key')})"

    @server.tool()
    async def record(label: str, delay_s: float = 0.0) -> str:
        """Record a side effect with a label, after waiting `delay_s` seconds."""
        if delay_s:
            await anyio.sleep(delay_s)
        if effects is not None:
            line = json.dumps({"label": label, "pid": os.getpid(), "at": time.time()})
            with effects.open("a") as out:
                out.write(line + "\n")
                out.flush()
                os.fsync(out.fileno())
        return f"recorded {label}"

    @server.tool(annotations=READ_ONLY)
    def crash() -> str:
        """End the server's process in the middle of the call."""
        os._exit(3)

    @server.tool(annotations=READ_ONLY)
    async def slow(seconds: float) -> str:
        """Answer after `seconds` seconds."""
        await anyio.sleep(seconds)
        return f"slept {seconds}"

    @server.tool(annotations=READ_ONLY)
    def fail(reason: str) -> str:
        """Fail with the reason given."""
        raise ToolError(reason)

    @server.tool(annotations=READ_ONLY)
    def huge(megabytes: int) -> str:
        """Answer `megabytes` MB of text."""
        return "x" * (megabytes * 1024 * 1024)

    if stdio:

        @server.tool(annotations=READ_ONLY)
        def garble() -> str:
            """Write a line that is not JSON on the protocol stream, then end the process."""
            sys.stdout.write("this is not JSON {\n")
            sys.stdout.flush()
            os._exit(4)

    @server.tool(annotations=READ_ONLY)
    async def unlock(ctx: Context) -> str:
        """Add the tool `secret` and tell the client the tool list changed."""
        if "secret" not in {t.name for t in await server.list_tools()}:
            server.add_tool(_secret, name="secret", annotations=READ_ONLY)
        await ctx.notify_tools_changed()
        await ctx.session.send_tool_list_changed()
        return "unlocked"

    server.add_tool(_broken_tool, name="broken", annotations=READ_ONLY)
    tool = server._tool_manager.get_tool("broken")  # no public way to list a bad schema
    assert tool is not None
    tool.parameters = {"type": "object", "properties": {"x": {"type": 12}}}
    return server


def _secret() -> str:
    """Tell the secret."""
    return "the secret is 42"


def _broken_tool(x: Any = None) -> str:
    """A tool whose input schema is not valid JSON Schema."""
    return "unreachable"


def stdio_server(name: str, effects: Path | None = None, **settings: Any) -> McpServerConfig:
    """The settings of this server run over stdio, named `name`."""
    args = ["-m", "loopline_testing.mcp_server"]
    if effects is not None:
        args += ["--effects", str(effects)]
    return McpServerConfig(name=name, command=sys.executable, args=tuple(args), **settings)


class HttpServer:
    """This server over streamable HTTP, in a process of its own on a free port."""

    def __init__(self, effects: Path | None = None, port: int | None = None) -> None:
        self.effects = effects
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where it answers."""
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def running(self) -> bool:
        """Whether its process is alive."""
        return self.process is not None and self.process.poll() is None

    def config(self, name: str, **settings: Any) -> McpServerConfig:
        """Settings that reach it, named `name`."""
        return McpServerConfig(name=name, url=self.url, **settings)

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the process; return once it accepts connections."""
        command = [sys.executable, "-m", "loopline_testing.mcp_server", "--http", str(self.port)]
        if self.effects is not None:
            command += ["--effects", str(self.effects)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the MCP test server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the MCP test server did not listen on {self.port} in {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL the process (a server that dies with calls in flight) and reap it."""
        if self.process is not None and self.running:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def effects_in(path: Path) -> list[dict[str, Any]]:
    """The side effects `record` appended to `path`, oldest first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> None:
    """Serve over stdio, or over streamable HTTP on `--http PORT`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--effects", type=Path, help="append one line per side effect here")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve HTTP on this port")
    args = parser.parse_args(argv)
    server = build(args.effects, stdio=args.http is None)
    if args.http is None:
        server.run("stdio")
    else:
        anyio.run(_serve_http, server, args.http)


async def _serve_http(server: MCPServer, port: int) -> None:
    await server.run_streamable_http_async(host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
