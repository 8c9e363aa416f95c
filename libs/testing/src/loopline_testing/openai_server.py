"""`OpenAIServer`: a real HTTP server speaking the OpenAI Chat Completions API, for tests.

It listens on 127.0.0.1 (a free port) in a background thread, records every request and
answers from a script the test writes, first in first out, as a JSON completion or, when the
request asks for `"stream": true`, as the API's event stream of chunks (with the usage chunk
when `stream_options.include_usage` is set):

```python
with OpenAIServer() as server:
    server.reply_tool_calls([("calculator", {"expression": "2+3"})])
    server.reply_status(429, retry_after=0)
    server.reply_text("5", usage={"prompt_tokens": 30, "completion_tokens": 2})
    server.reply_text("slowly", chunk_delay_s=0.2)      # streamed piece by piece
    server.reply_text("cut", break_after=2)             # the connection drops mid-stream
    model = OpenAIChatModel(base_url=server.base_url, model="gpt-test")
    ...
    assert server.calls == 3
    assert server.requests[0]["model"] == "gpt-test"
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"
```

When the script is empty it asks `default(request)` for a completion (None: HTTP 500 "no
scripted reply"). `requests_per_minute` makes it refuse, with 429 and Retry-After, what a
provider with that limit would. Real HTTP, real JSON, real SSE: the client under test cannot
tell it from the API.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from loopline_testing._scripted_http import (
    Headers,
    RecordedRequest,
    Reply,
    ScriptedServer,
    SSEvent,
    pieces,
)

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
        "usage": {**tokens, "total_tokens": tokens["prompt_tokens"] + tokens["completion_tokens"]},
    }


def _usage(usage: Usage) -> dict[str, Any]:
    if usage is None:
        usage = DEFAULT_USAGE
    if isinstance(usage, Mapping):
        counts: dict[str, Any] = {
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
        }
        if "cached_tokens" in usage:
            counts["prompt_tokens_details"] = {"cached_tokens": int(usage["cached_tokens"])}
        return counts
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


class OpenAIServer(ScriptedServer):
    """A Chat Completions server on 127.0.0.1, scripted reply by reply; a context manager.

    `default(request)` answers when the script is empty: a completion dict (such as
    `text_completion("ok")`) or None for HTTP 500. Every `reply_*` takes `delay_s`, to play a
    slow server: the reply is held that long (or until the server stops); streamed replies
    also take `chunk_delay_s` (between chunks) and `break_after` (chunks sent before the
    connection drops).
    """

    paths = (CHAT_PATH,)
    thread_name = "openai-server"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, what an OpenAI client takes as its base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def reply_tool_calls(
        self,
        calls: Sequence[ScriptedCall],
        *,
        content: str | None = None,
        usage: Usage = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        break_after: int | None = None,
    ) -> None:
        """Next, ask for `calls`: `(tool, arguments)` or `(tool, arguments, call_id)` each."""
        completion = tool_call_completion(calls, content=content, usage=usage)
        self.push(
            Reply(
                answer=completion,
                delay_s=delay_s,
                chunk_delay_s=chunk_delay_s,
                break_after=break_after,
            )
        )

    def reply_text(
        self,
        text: str,
        *,
        usage: Usage = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        break_after: int | None = None,
    ) -> None:
        """Next, give the final answer `text`."""
        self.push(
            Reply(
                answer=text_completion(text, usage=usage),
                delay_s=delay_s,
                chunk_delay_s=chunk_delay_s,
                break_after=break_after,
            )
        )

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
        self.push(Reply(status, body=error_body(status, message), headers=headers, delay_s=delay_s))

    def reply_raw(
        self,
        status: int,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Next, send exactly `body` with `status` (content type JSON unless `headers` say),
        streamed or not."""
        given = tuple((headers or {}).items())
        self.push(Reply(status, body=body, headers=given, delay_s=delay_s))

    def error_body(self, status: int, message: str | None = None) -> bytes:
        return error_body(status, message)

    def streamed(self, request: RecordedRequest) -> bool:
        return request.get("stream") is True

    def render(
        self, answer: dict[str, Any], request: RecordedRequest, number: int
    ) -> dict[str, Any]:
        """`answer` with what a real server adds: an id, the model asked for, the time."""
        filled = {
            "id": f"chatcmpl-{number:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "unknown"),
        }
        return {**filled, **answer}

    def events(self, body: dict[str, Any], request: RecordedRequest) -> Sequence[SSEvent]:
        """The completion as chunks: the role, the text a few characters at a time, each tool
        call's id and name then its arguments in pieces, the finish, the usage, `[DONE]`."""
        head: dict[str, Any] = {k: body[k] for k in ("id", "created", "model") if k in body}
        head["object"] = "chat.completion.chunk"
        choice = (body.get("choices") or [{}])[0]
        message = choice.get("message") or {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> SSEvent:
            one = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return None, json.dumps({**head, "choices": [one]})

        out = [chunk({"role": "assistant", "content": ""})]
        if message.get("content"):
            out += [chunk({"content": piece}) for piece in pieces(message["content"])]
        for index, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function", {})
            start = {"index": index, "id": call.get("id"), "type": "function"}
            start["function"] = {"name": function.get("name"), "arguments": ""}
            out.append(chunk({"tool_calls": [start]}))
            for piece in pieces(str(function.get("arguments", "")), 16):
                more = {"index": index, "function": {"arguments": piece}}
                out.append(chunk({"tool_calls": [more]}))
        out.append(chunk({}, choice.get("finish_reason", "stop")))
        options = request.get("stream_options") or {}
        if options.get("include_usage") and body.get("usage") is not None:
            out.append((None, json.dumps({**head, "choices": [], "usage": body["usage"]})))
        out.append((None, "[DONE]"))
        return out
