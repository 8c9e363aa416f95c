"""One small HTTP server per service process: /metrics, /healthz and /readyz.

It runs in a thread of its own, on prometheus_client's WSGI app and threaded WSGI server, so a
scrape never waits for the event loop and a stuck event loop is seen: /healthz and /readyz ask
the loop itself to answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopline_runtime._health import Health

log = logging.getLogger("loopline.http")

LOOP_TIMEOUT_S = 5.0
"""How long the event loop may take to answer a probe before the process counts as stuck."""

StartResponse = Callable[..., Any]


class HttpSettings(BaseSettings):
    """Where a service serves /metrics, /healthz and /readyz (LOOPLINE_HTTP_*)."""

    model_config = SettingsConfigDict(env_prefix="LOOPLINE_HTTP_", frozen=True)

    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on (LOOPLINE_HTTP_HOST); 0.0.0.0 in a container.",
    )
    port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port (LOOPLINE_HTTP_PORT); 0 takes any free one, written to the ready file.",
    )


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per request: Prometheus scrapes every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server4(ThreadingWSGIServer):
    address_family = socket.AF_INET


class _Server6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


class StatusServer:
    """Serves the process's metrics and health from a daemon thread."""

    def __init__(
        self,
        health: Health,
        loop: asyncio.AbstractEventLoop,
        settings: HttpSettings | None = None,
        registry: CollectorRegistry = REGISTRY,
        loop_timeout: float = LOOP_TIMEOUT_S,
    ):
        self.health = health
        self.loop = loop
        self.loop_timeout = loop_timeout
        self.settings = settings or HttpSettings()
        self._metrics = make_wsgi_app(registry)
        self._server: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen when the setting is 0)."""
        if self._server is None:
            raise RuntimeError("StatusServer.start() was not called")
        return int(self._server.server_port)

    def start(self) -> StatusServer:
        """Bind and serve; OSError (with the address) when the port is taken."""
        host, port = self.settings.host, self.settings.port
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            server_class = _Server6 if found[0][0] == socket.AF_INET6 else _Server4
            server: ThreadingWSGIServer = make_server(
                host, port, self._app, server_class, _QuietHandler
            )
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve HTTP on {host}:{port}: {exc.strerror}") from exc
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        self._thread.start()
        log.info("serving /metrics, /healthz and /readyz on %s:%d", host, self.port)
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            result: Iterable[bytes] = self._metrics(environ, start_response)
            return result
        if path == "/healthz":
            problems = self._ask_loop(lambda: [])
        elif path == "/readyz":
            problems = self._ask_loop(self.health.not_ready)
        else:
            return _reply(start_response, "404 Not Found", "not found: try /metrics\n")
        if problems:
            return _reply(start_response, "503 Service Unavailable", "\n".join(problems) + "\n")
        return _reply(start_response, "200 OK", "ok\n")

    def _ask_loop(self, question: Callable[[], list[str]]) -> list[str]:
        """`question()` answered on the event loop: a loop that cannot answer is the problem."""
        future: concurrent.futures.Future[list[str]] = concurrent.futures.Future()

        def answer() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the server gave up waiting
            try:
                future.set_result(question())
            except Exception as exc:
                future.set_result([f"health check failed: {exc!r}"])

        try:
            self.loop.call_soon_threadsafe(answer)
        except RuntimeError:
            return ["event loop is closed"]
        try:
            return future.result(timeout=self.loop_timeout)
        except TimeoutError:
            future.cancel()
            return [f"event loop did not answer within {self.loop_timeout:g}s"]


def _reply(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
