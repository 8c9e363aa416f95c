"""`OpenAIServer`: a real HTTP server speaking the OpenAI Chat Completions API, for tests.

It listens on 127.0.0.1 (a free port) in a background thread, records every request and
answers from a script the test writes, first in first out:

```python
with OpenAIServer() as server:
    server.reply_tool_calls([("calculator", {"expression": "2+3"})])
    server.reply_status(429, retry_after=0)
    server.reply_text("5", usage={"prompt_tokens": 30, "completion_tokens": 2})
    model = OpenAIChatModel(base_url=server.base_url, model="gpt-test")
    ...
    assert server.calls == 3
    assert server.requests[0]["model"] == "gpt-test"
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"
```

When the script is empty it asks `default(request)` for a completion (None: HTTP 500 "no
scripted reply"). Real HTTP, real JSON: the client under test cannot tell it from the API.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self

__all__ = [
    "DEFAULT_USAGE",
    "Headers",
    "OpenAIServer",
    "RecordedRequest",
    "ScriptedCall",
    "TokenCounts",
    "error_body",
    "text_completion",
    "tool_call_completion",
]

CHAT_PATH = "/v1/chat/completions"
DEFAULT_USAGE: Mapping[str, int] = {"prompt_tokens": 10, "completion_tokens": 5}
"""The usage a scripted completion reports when the test gives none."""

ScriptedCall = tuple[str, Mapping[str, Any] | str] | tuple[str, Mapping[str, Any] | str, str]
"""A tool call to reply with: `(tool, arguments)` or `(tool, arguments, call_id)`. Arguments
given as a string are sent as they are, e.g. to send arguments that are not JSON."""


class TokenCounts(Protocol):
    """Anything with token counts, e.g. `loopline_events.TokenUsage`."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


Usage = Mapping[str, int] | TokenCounts | None


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
    was not a JSON object), with `headers`, `path` and the `raw` body besides."""

    def __init__(self, body: Mapping[str, Any], *, path: str, headers: Headers, raw: bytes):
        super().__init__(body)
        self.path = path
        self.headers = headers
        self.raw = raw


def text_completion(text: str, *, usage: Usage = None) -> dict[str, Any]:
    """A completion whose message is the final answer `text`."""
    return _completion({"role": "assistant", "content": text}, "stop", usage)


def tool_call_completion(
    calls: Sequence[ScriptedCall], *, content: str | None = None, usage: Usage = None
) -> dict[str, Any]:
    """A completion asking for `calls`, with ids like `call_1f0c...` unless given."""
    message = {
        "role": "assistant",
        "content": content,
        "tool_calls": [_wire_call(call) for call in calls],
    }
    return _completion(message, "tool_calls", usage)


def _wire_call(call: ScriptedCall) -> dict[str, Any]:
    tool, arguments = call[0], call[1]
    call_id = call[2] if len(call) == 3 else f"call_{uuid.uuid4().hex[:24]}"
    text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
    return {"id": call_id, "type": "function", "function": {"name": tool, "arguments": text}}


def _completion(message: dict[str, Any], finish_reason: str, usage: Usage) -> dict[str, Any]:
    tokens = _usage(usage)
    return {
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": {**tokens, "total_tokens": sum(tokens.values())},
    }


def _usage(usage: Usage) -> dict[str, int]:
    if usage is None:
        usage = DEFAULT_USAGE
    if isinstance(usage, Mapping):
        return {
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
        }
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}


def error_body(status: int, message: str | None = None) -> bytes:
    """An error body shaped like OpenAI's."""
    kind = "invalid_request_error"
    if status == 429:
        kind = "rate_limit_error"
    elif status >= 500:
        kind = "server_error"
    text = message or _DEFAULT_MESSAGES.get(status, f"HTTP {status}")
    error = {"message": text, "type": kind, "param": None, "code": None}
    return json.dumps({"error": error}).encode()


_DEFAULT_MESSAGES = {
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request.",
    503: "The engine is currently overloaded, please try again later.",
}


@dataclass(frozen=True)
class _Reply:
    status: int = 200
    completion: dict[str, Any] | None = None
    """Filled in with id, model and time when served."""
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


class OpenAIServer:
    """A Chat Completions server on 127.0.0.1, scripted reply by reply; a context manager.

    `default(request)` answers when the script is empty: a completion dict (such as
    `text_completion("ok")`) or None for HTTP 500. Every `reply_*` takes `delay_s`, to play a
    slow server: the reply is held that long (or until the server stops).
    """

    def __init__(self, default: Callable[[RecordedRequest], dict[str, Any] | None] | None = None):
        self.default = default
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self._script: deque[_Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._served = 0

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, what an OpenAI client takes as its base URL."""
        if self._http is None:
            raise RuntimeError("the server is not started; use `with OpenAIServer() as server:`")
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

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

    def reply_tool_calls(
        self,
        calls: Sequence[ScriptedCall],
        *,
        content: str | None = None,
        usage: Usage = None,
        delay_s: float = 0.0,
    ) -> None:
        """Next, ask for `calls`: `(tool, arguments)` or `(tool, arguments, call_id)` each."""
        completion = tool_call_completion(calls, content=content, usage=usage)
        self._push(_Reply(completion=completion, delay_s=delay_s))

    def reply_text(self, text: str, *, usage: Usage = None, delay_s: float = 0.0) -> None:
        """Next, give the final answer `text`."""
        self._push(_Reply(completion=text_completion(text, usage=usage), delay_s=delay_s))

    def reply_status(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Next, fail with HTTP `status` and an OpenAI-shaped error, with Retry-After if given."""
        headers = () if retry_after is None else (("Retry-After", f"{retry_after:g}"),)
        self._push(
            _Reply(status, body=error_body(status, message), headers=headers, delay_s=delay_s)
        )

    def reply_raw(
        self,
        status: int,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Next, send exactly `body` with `status` (content type JSON unless `headers` say)."""
        given = tuple((headers or {}).items())
        self._push(_Reply(status, body=body, headers=given, delay_s=delay_s))

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
            name="openai-server",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the port; replies held by `delay_s` are let go."""
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

    def _push(self, reply: _Reply) -> None:
        with self._lock:
            self._script.append(reply)

    def _handle(self, handler: _Handler) -> None:
        """Record the request, pick its reply, hold it if asked, send it."""
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        body = _json_object(raw)
        request = RecordedRequest(
            body or {}, path=handler.path, headers=Headers(handler.headers.items()), raw=raw
        )
        with self._lock:
            self.requests.append(request)
        reply = self._reply_to(request, body is not None)
        if reply.delay_s > 0:
            self._stopping.wait(reply.delay_s)
        self._send(handler, reply, request)

    def _reply_to(self, request: RecordedRequest, is_json: bool) -> _Reply:
        if request.path.split("?")[0] != CHAT_PATH:
            return _Reply(404, body=error_body(404, f"no route {request.path}"))
        if not is_json:
            return _Reply(400, body=error_body(400, "the body is not a JSON object"))
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.default is None:
            return _Reply(500, body=error_body(500, "no scripted reply"))
        try:
            completion = self.default(request)
        except Exception as exc:  # the test's bug, shown to the client rather than lost
            return _Reply(500, body=error_body(500, f"default raised {exc!r}"))
        if completion is None:
            return _Reply(500, body=error_body(500, "no scripted reply"))
        return _Reply(completion=completion)

    def _send(self, handler: _Handler, reply: _Reply, request: RecordedRequest) -> None:
        body = reply.body
        if reply.completion is not None:
            with self._lock:
                self._served += 1
                number = self._served
            body = json.dumps(_filled(reply.completion, request, number)).encode()
        headers = dict(reply.headers)
        if "content-type" not in Headers(headers.items()):
            headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(body))
        try:
            handler.send_response(reply.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)
        except ConnectionError:  # the client gave up (a timeout under test, usually)
            pass


def _filled(completion: dict[str, Any], request: RecordedRequest, number: int) -> dict[str, Any]:
    """`completion` with what a real server adds: an id, the model asked for, the time."""
    filled = {
        "id": f"chatcmpl-{number:06d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "unknown"),
    }
    return {**filled, **completion}


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_POST(self) -> None:
        self.server.owner._handle(self)

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are in `OpenAIServer.requests`."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: OpenAIServer):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up is part of the tests (timeouts); anything else is reported.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
