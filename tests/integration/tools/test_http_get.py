"""`http_get` against a real HTTP server on 127.0.0.1, and its refusals of private addresses.

Only loopback is ever contacted: every refusal happens before a connection is opened, and
the `no_connections` fixture would fail a test that tried one.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from loopline_events import ToolErrorKind
from loopline_tools import BUILTIN_TOOLS, RetryPolicy, Tool, ToolContext, ToolOutcome, run_tool

HTTP_GET: Tool = next(t for t in BUILTIN_TOOLS if t.name == "http_get")
PRIVATE_OK = ToolContext(run_id="r", call_id="c", allow_private_networks=True)
DEFAULT = ToolContext(run_id="r", call_id="c")
BIG = 50_000


class Handler(BaseHTTPRequestHandler):
    """Routes: /hello, /big, /latin1, /host, /missing, /busy, /redirect/N."""

    server: LocalServer

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.path.startswith("/redirect/"):
            hops = int(self.path.rsplit("/", 1)[1])
            if hops > 0:
                self._send(302, b"", location=f"/redirect/{hops - 1}")
            else:
                self._send(200, b"arrived")
            return
        routes: dict[str, tuple[int, bytes, str]] = {
            "/hello": (200, b"hello, loopline", "text/plain; charset=utf-8"),
            "/big": (200, b"a" * BIG, "text/plain"),
            "/latin1": (200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1"),
            "/host": (200, self.headers["Host"].encode(), "text/plain"),
            "/busy": (503, b"try later", "text/plain"),
        }
        status, body, content_type = routes.get(self.path, (404, b"no such page", "text/plain"))
        self._send(status, body, content_type=content_type)

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.paths: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    thread = threading.Thread(target=local.serve_forever, daemon=True)
    thread.start()
    try:
        yield local
    finally:
        local.shutdown()
        local.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def fresh(server: LocalServer) -> None:
    server.paths.clear()


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Fail any request that reaches httpx's network transport; return those tried."""
    tried: list[httpx.Request] = []

    async def refuse(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        tried.append(request)
        raise AssertionError(f"a connection was attempted to {request.url}")

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", refuse)
    return tried


async def no_sleep(seconds: float) -> None:
    pass


async def get(url: str, ctx: ToolContext = PRIVATE_OK, **arguments: object) -> ToolOutcome:
    return await run_tool(HTTP_GET, {"url": url, **arguments}, ctx, sleep=no_sleep)


async def test_fetches_a_page(server: LocalServer) -> None:
    outcome = await get(server.url("/hello"))
    assert outcome.output == "HTTP 200 text/plain; charset=utf-8\n\nhello, loopline"
    assert server.paths == ["/hello"]


async def test_a_name_is_resolved_and_kept_in_the_host_header(server: LocalServer) -> None:
    outcome = await get(server.url("/host", host="localhost"))
    assert outcome.output == f"HTTP 200 text/plain\n\nlocalhost:{server.port}"


async def test_the_charset_of_the_response_is_used(server: LocalServer) -> None:
    outcome = await get(server.url("/latin1"))
    assert outcome.output is not None
    assert outcome.output.endswith("\n\ncafé")


async def test_the_body_stops_at_max_bytes_and_says_so(server: LocalServer) -> None:
    outcome = await get(server.url("/big"), max_bytes=1000)
    assert outcome.output == (
        "HTTP 200 text/plain\n\n"
        + "a" * 1000
        + "\n[body truncated: only the first 1000 bytes were read]"
    )


async def test_a_body_of_exactly_max_bytes_is_whole(server: LocalServer) -> None:
    outcome = await get(server.url("/big"), max_bytes=BIG)
    assert outcome.output == "HTTP 200 text/plain\n\n" + "a" * BIG


async def test_not_found_is_a_failure_not_retried(server: LocalServer) -> None:
    outcome = await get(server.url("/nowhere"))
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    assert outcome.error.message.startswith("HTTP 404 Not Found from http://127.0.0.1:")
    assert not outcome.error.retryable
    assert server.paths == ["/nowhere"]


async def test_a_server_error_is_retried(server: LocalServer) -> None:
    outcome = await get(server.url("/busy"))
    assert outcome.error is not None
    assert outcome.error.message.startswith("HTTP 503")
    assert outcome.error.retryable
    assert outcome.attempts == RetryPolicy().max_attempts
    assert server.paths == ["/busy"] * RetryPolicy().max_attempts


async def test_three_redirects_are_followed(server: LocalServer) -> None:
    outcome = await get(server.url("/redirect/3"))
    assert outcome.output == "HTTP 200 (no content type)\n\narrived"
    assert server.paths == ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"]


async def test_a_fourth_redirect_is_refused(server: LocalServer) -> None:
    outcome = await get(server.url("/redirect/4"))
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    assert outcome.error.message.startswith("too many redirects: more than 3")
    assert server.paths == ["/redirect/4", "/redirect/3", "/redirect/2", "/redirect/1"]


async def test_a_closed_port_is_a_retryable_connection_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await get(f"http://127.0.0.1:{port}/")
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.EXECUTION
    assert outcome.error.message.startswith("could not connect to 127.0.0.1")
    assert outcome.error.retryable
    assert outcome.attempts == RetryPolicy().max_attempts


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:{port}/hello", "loopback"),
        ("http://localhost:{port}/hello", "loopback"),
        ("http://LocalHost.:{port}/hello", "loopback"),
        ("http://api.localhost:{port}/hello", "loopback"),
        ("http://[::1]:{port}/hello", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/hello", "loopback"),
        ("http://2130706433:{port}/hello", "loopback"),
        ("http://0x7f.0.0.1:{port}/hello", "loopback"),
        ("http://0.0.0.0:{port}/hello", "unspecified"),
        ("http://10.0.0.1/", "private"),
        ("http://192.168.1.1/admin", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://100.64.0.1/", "non-public"),
    ],
)
async def test_private_addresses_are_refused_before_connecting(
    server: LocalServer, no_connections: list[httpx.Request], url: str, kind: str
) -> None:
    outcome = await get(url.format(port=server.port), DEFAULT)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.FORBIDDEN
    assert f" {kind} address" in outcome.error.message
    assert not outcome.error.retryable
    assert outcome.attempts == 1
    assert no_connections == []
    assert server.paths == []


@pytest.mark.parametrize(
    "url", ["ftp://example.org/f", "file:///etc/passwd", "http://", "nonsense"]
)
async def test_only_http_urls_are_accepted(no_connections: list[httpx.Request], url: str) -> None:
    outcome = await get(url, DEFAULT)
    assert outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert outcome.error.message.startswith("invalid arguments for http_get: url:")
    assert no_connections == []
