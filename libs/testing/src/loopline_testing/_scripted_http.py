"""What the test model servers share: a real HTTP server on 127.0.0.1 in a background thread
that records every request and answers from a script, as JSON or as a server-sent event
stream, optionally holding a provider's rate limit with 429s.

`OpenAIServer` and `AnthropicServer` speak their APIs on top of it: they render a scripted
answer as their API's JSON body or event stream, and shape their errors.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

SSEvent = tuple[str | None, str]
"""A server-sent event: its name (None for none) and its data line."""


class Headers(Mapping[str, str]):
    """A request's headers; names match whatever their case."""

    def __init__(self, items: Iterable[tuple[str, str]]):
        self._items = {name.lower(): value for name, value in items}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class RecordedRequest(dict[str, Any]):
    """A request the server received: this dict is its parsed JSON body (empty when the body
    was not a JSON object), with `headers`, `path`, the `raw` body and when it `arrived`
    (`time.monotonic()`) besides."""

    def __init__(
        self,
        body: Mapping[str, Any],
        *,
        path: str,
        headers: Headers,
        raw: bytes,
        arrived: float = 0.0,
    ):
        super().__init__(body)
        self.path = path
        self.headers = headers
        self.raw = raw
        self.arrived = arrived


@dataclass(frozen=True)
class Reply:
    """One scripted reply. `answer` is the API's own answer object (filled in when served);
    otherwise `body` is sent as it is."""

    status: int = 200
    answer: dict[str, Any] | None = None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    """Held this long before answering (or until the server stops)."""
    chunk_delay_s: float = 0.0
    """When streamed: held this long before each event after the first."""
    break_after: int | None = None
    """When streamed: the connection is cut after this many events, mid-stream."""


class ScriptedServer(ABC):
    """A scripted model API on 127.0.0.1 (a free port); a context manager.

    `default(request)` answers when the script is empty: an answer object, or None for an
    HTTP 500 (`delay_s` holds each of its answers). With `requests_per_minute`, the server
    holds that rate as a provider does: a request beyond it in the last 60 s gets a 429 with
    `Retry-After`.
    """

    paths: tuple[str, ...] = ()
    """Routes that answer from the script."""
    thread_name = "model-server"

    def __init__(
        self,
        default: Callable[[RecordedRequest], dict[str, Any] | None] | None = None,
        *,
        requests_per_minute: float | None = None,
        chunk_delay_s: float = 0.0,
        delay_s: float = 0.0,
    ):
        self.default = default
        self.delay_s = delay_s
        """Every answer from `default` is held this long (a model takes its time)."""
        self.requests_per_minute = requests_per_minute
        self.chunk_delay_s = chunk_delay_s
        """Between the events of every streamed answer (a scripted reply may set its own)."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self.refused = 0
        """Requests refused with 429 for the rate limit."""
        self._accepted: deque[float] = deque()
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._served = 0

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError(f"the server is not started; use `with {type(self).__name__}():`")
        return int(self._http.server_address[1])

    @property
    def calls(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.requests)

    @property
    def pending(self) -> int:
        """Scripted replies not served yet."""
        with self._lock:
            return len(self._script)

    def most_in_any(self, window_s: float = 60.0) -> int:
        """The most requests that arrived within any `window_s` seconds."""
        with self._lock:
            times = sorted(r.arrived for r in self.requests)
        most, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= window_s:
                first += 1
            most = max(most, last - first + 1)
        return most

    def push(self, reply: Reply) -> None:
        """Next, answer with `reply`."""
        with self._lock:
            self._script.append(reply)

    def start(self) -> None:
        """Listen on a free port and serve in a background thread."""
        if self._http is not None:
            return
        self._stopping.clear()
        self._http = _HTTPServer(self)
        # A short poll keeps stop() fast: shutdown waits for the loop to look up.
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the port; replies held by a delay are let go."""
        if self._http is None:
            return
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # What each API says its own way.

    @abstractmethod
    def error_body(self, status: int, message: str | None = None) -> bytes:
        """An error body shaped like the API's."""

    @abstractmethod
    def streamed(self, request: RecordedRequest) -> bool:
        """Whether the request asks for an event stream."""

    @abstractmethod
    def render(
        self, answer: dict[str, Any], request: RecordedRequest, number: int
    ) -> dict[str, Any]:
        """The answer as the API's JSON body (`number`: how many answers were served)."""

    @abstractmethod
    def events(self, body: dict[str, Any], request: RecordedRequest) -> Sequence[SSEvent]:
        """The rendered answer as the API's event stream."""

    # Serving.

    def _handle(self, handler: _Handler) -> None:
        """Record the request, pick its reply, hold it if asked, send it."""
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        body = _json_object(raw)
        request = RecordedRequest(
            body or {},
            path=handler.path,
            headers=Headers(handler.headers.items()),
            raw=raw,
            arrived=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
        reply = self._reply_to(request, body is not None)
        if reply.delay_s > 0:
            self._stopping.wait(reply.delay_s)
        self._send(handler, reply, request)

    def _reply_to(self, request: RecordedRequest, is_json: bool) -> Reply:
        if request.path.split("?")[0] not in self.paths:
            return Reply(404, body=self.error_body(404, f"no route {request.path}"))
        if not is_json:
            return Reply(400, body=self.error_body(400, "the body is not a JSON object"))
        refused = self._over_limit(request.arrived)
        if refused is not None:
            return refused
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.default is None:
            return Reply(500, body=self.error_body(500, "no scripted reply"))
        try:
            answer = self.default(request)
        except Exception as exc:  # the test's bug, shown to the client rather than lost
            return Reply(500, body=self.error_body(500, f"default raised {exc!r}"))
        if answer is None:
            return Reply(500, body=self.error_body(500, "no scripted reply"))
        return Reply(answer=answer, delay_s=self.delay_s)

    def _over_limit(self, now: float) -> Reply | None:
        if self.requests_per_minute is None:
            return None
        with self._lock:
            while self._accepted and now - self._accepted[0] >= 60.0:
                self._accepted.popleft()
            if len(self._accepted) < self.requests_per_minute:
                self._accepted.append(now)
                return None
            self.refused += 1
            wait = max(1, int(60.0 - (now - self._accepted[0])) + 1)
        return Reply(
            429,
            body=self.error_body(429),
            headers=(("Retry-After", str(wait)),),
        )

    def _send(self, handler: _Handler, reply: Reply, request: RecordedRequest) -> None:
        try:
            if reply.answer is not None:
                with self._lock:
                    self._served += 1
                    number = self._served
                rendered = self.render(reply.answer, request, number)
                if self.streamed(request):
                    self._stream(handler, reply, self.events(rendered, request))
                    return
                self._send_body(handler, reply.status, json.dumps(rendered).encode(), reply.headers)
                return
            self._send_body(handler, reply.status, reply.body, reply.headers)
        except ConnectionError:  # the client gave up (a timeout under test, usually)
            handler.close_connection = True

    def _send_body(
        self,
        handler: _Handler,
        status: int,
        body: bytes,
        headers: Sequence[tuple[str, str]],
    ) -> None:
        given = dict(headers)
        if "content-type" not in Headers(given.items()):
            given["Content-Type"] = "application/json"
        given["Content-Length"] = str(len(body))
        handler.send_response(status)
        for name, value in given.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _stream(self, handler: _Handler, reply: Reply, events: Sequence[SSEvent]) -> None:
        """Send `events` as a chunked `text/event-stream`; cut mid-stream if the reply says."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        pause = reply.chunk_delay_s or self.chunk_delay_s
        for index, (name, data) in enumerate(events):
            if reply.break_after is not None and index >= reply.break_after:
                # No closing chunk: the client reads a body that ends too soon.
                handler.close_connection = True
                handler.wfile.flush()
                handler.connection.close()
                return
            if index and pause > 0 and self._stopping.wait(pause):
                handler.close_connection = True
                return
            text = (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
            _chunk(handler, text.encode())
        _chunk(handler, b"")


def _chunk(handler: _Handler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive and chunked event streams, as the APIs serve

    def do_POST(self) -> None:
        self.server.owner._handle(self)

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are in `requests`."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: ScriptedServer):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up is part of the tests (timeouts); anything else is reported.
        if not isinstance(sys.exc_info()[1], ConnectionError | OSError):
            super().handle_error(request, client_address)


def pieces(text: str, size: int = 8) -> list[str]:
    """`text` cut as a model streams it: a few characters at a time."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
