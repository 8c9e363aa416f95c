"""`AnthropicServer`: a real HTTP server speaking Anthropic's Messages API, for tests.

It listens on 127.0.0.1 (a free port) in a background thread, records every request and
answers from a script, first in first out, as a JSON message or, when the request asks for
`"stream": true`, as the API's event stream (`message_start`, `content_block_*`,
`message_delta`, `message_stop`). It checks what the API checks of a request's shape (a
`max_tokens`, turns that alternate from the user's, tool results answering the tool uses
before them) and answers 400 as the API would.

It caches prompts as the API does: the prefix of a request (tools, then system, then
messages) up to each block marked `cache_control` is written to its cache; a later request
that starts with a cached prefix reads it. The usage it reports says so
(`cache_read_input_tokens`, `cache_creation_input_tokens`, `input_tokens` for the rest),
counting four characters a token:

```python
with AnthropicServer() as server:
    server.reply_tool_use([("calculator", {"expression": "6 * 7"})])
    server.reply_status(529)                          # overloaded
    server.reply_text("It is 42.", chunk_delay_s=0.1)
    model = AnthropicModel(model="claude-test", base_url=server.base_url, api_key=...)
    ...
    assert server.requests[1]["system"][-1]["cache_control"] == {"type": "ephemeral"}
```
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from loopline_testing._scripted_http import (
    RecordedRequest,
    Reply,
    ScriptedServer,
    SSEvent,
    pieces,
)

__all__ = [
    "AnthropicServer",
    "ScriptedUse",
    "error_body",
    "text_message",
    "tool_use_message",
]

MESSAGES_PATH = "/v1/messages"
CHARS_PER_TOKEN = 4

ScriptedUse = tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], str]
"""A tool use to reply with: `(tool, input)` or `(tool, input, id)`."""

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def text_message(text: str, *, output_tokens: int | None = None) -> dict[str, Any]:
    """A message whose text is the final answer `text`."""
    return _message([{"type": "text", "text": text}], "end_turn", output_tokens)


def tool_use_message(
    uses: Sequence[ScriptedUse], *, text: str | None = None, output_tokens: int | None = None
) -> dict[str, Any]:
    """A message asking for `uses`, with ids like `toolu_01...` unless given."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for use in uses:
        use_id = use[2] if len(use) == 3 else f"toolu_{uuid.uuid4().hex[:22]}"
        blocks.append({"type": "tool_use", "id": use_id, "name": use[0], "input": dict(use[1])})
    return _message(blocks, "tool_use", output_tokens)


def _message(
    content: list[dict[str, Any]], stop_reason: str, output_tokens: int | None
) -> dict[str, Any]:
    message: dict[str, Any] = {"content": content, "stop_reason": stop_reason}
    if output_tokens is not None:
        message["output_tokens"] = output_tokens
    return message


def error_body(status: int, message: str | None = None) -> bytes:
    """An error body shaped like Anthropic's."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    text = message or {429: "Rate limited.", 529: "Overloaded"}.get(status, f"HTTP {status}")
    return json.dumps({"type": "error", "error": {"type": kind, "message": text}}).encode()


class AnthropicServer(ScriptedServer):
    """A Messages API server on 127.0.0.1, scripted reply by reply; a context manager.

    `default(request)` answers when the script is empty: a message dict (such as
    `text_message("ok")`) or None for HTTP 500. Every `reply_*` takes `delay_s`; streamed
    replies also take `chunk_delay_s` and `break_after` (events sent before the connection
    drops).
    """

    paths = (MESSAGES_PATH,)
    thread_name = "anthropic-server"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cache: set[str] = set()
        """Keys of the prompt prefixes written to the cache."""
        self._cache_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, what an Anthropic client takes as its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def reply_text(
        self,
        text: str,
        *,
        output_tokens: int | None = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        break_after: int | None = None,
    ) -> None:
        """Next, give the final answer `text`."""
        answer = text_message(text, output_tokens=output_tokens)
        self.push(
            Reply(
                answer=answer, delay_s=delay_s, chunk_delay_s=chunk_delay_s, break_after=break_after
            )
        )

    def reply_tool_use(
        self,
        uses: Sequence[ScriptedUse],
        *,
        text: str | None = None,
        output_tokens: int | None = None,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        """Next, ask for `uses`: `(tool, input)` or `(tool, input, id)` each."""
        answer = tool_use_message(uses, text=text, output_tokens=output_tokens)
        self.push(Reply(answer=answer, delay_s=delay_s, chunk_delay_s=chunk_delay_s))

    def reply_status(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Next, fail with HTTP `status` and an Anthropic-shaped error, with Retry-After if
        given (529: overloaded)."""
        headers = () if retry_after is None else (("retry-after", f"{retry_after:g}"),)
        self.push(Reply(status, body=error_body(status, message), headers=headers, delay_s=delay_s))

    def reply_stream_error(self, text: str, kind: str = "overloaded_error") -> None:
        """Next, begin streaming the answer `text`, then report the error `kind` in the stream
        (as the API does when it is overloaded mid-reply)."""
        answer = text_message(text)
        answer["stream_error"] = kind
        self.push(Reply(answer=answer))

    def error_body(self, status: int, message: str | None = None) -> bytes:
        return error_body(status, message)

    def streamed(self, request: RecordedRequest) -> bool:
        return request.get("stream") is True

    def _reply_to(self, request: RecordedRequest, is_json: bool) -> Reply:
        if is_json and request.path.split("?")[0] in self.paths:
            problem = _invalid(request)
            if problem is not None:
                return Reply(400, body=error_body(400, problem))
        return super()._reply_to(request, is_json)

    def render(
        self, answer: dict[str, Any], request: RecordedRequest, number: int
    ) -> dict[str, Any]:
        """The message with its id, model and usage (from the prompt cache's point of view)."""
        content = answer["content"]
        written = answer.get("output_tokens")
        if written is None:
            written = max(1, len(json.dumps(content)) // CHARS_PER_TOKEN)
        message = {
            "id": f"msg_{number:06d}",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "unknown"),
            "content": content,
            "stop_reason": answer.get("stop_reason", "end_turn"),
            "stop_sequence": None,
            "usage": {**self._cached(request), "output_tokens": written},
        }
        if "stream_error" in answer:
            message["stream_error"] = answer["stream_error"]
        return message

    def events(self, body: dict[str, Any], request: RecordedRequest) -> Sequence[SSEvent]:
        """The message as the API streams it."""
        usage = body["usage"]
        start = {**body, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        start.pop("stream_error", None)
        out: list[SSEvent] = [
            ("message_start", json.dumps({"type": "message_start", "message": start}))
        ]
        out.append(("ping", json.dumps({"type": "ping"})))
        for index, block in enumerate(body["content"]):
            opened: dict[str, Any]
            if block["type"] == "text":
                opened = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
            else:
                opened = {**block, "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": p}
                    for p in pieces(json.dumps(block["input"]), 12)
                ]
            out.append(_event("content_block_start", index=index, content_block=opened))
            out += [_event("content_block_delta", index=index, delta=d) for d in deltas]
            if "stream_error" in body:
                error = {"type": body["stream_error"], "message": "Overloaded"}
                out.append(("error", json.dumps({"type": "error", "error": error})))
                return out
            out.append(_event("content_block_stop", index=index))
        delta = {"stop_reason": body["stop_reason"], "stop_sequence": None}
        out.append(
            _event("message_delta", delta=delta, usage={"output_tokens": usage["output_tokens"]})
        )
        out.append(_event("message_stop"))
        return out

    def _cached(self, request: RecordedRequest) -> dict[str, int]:
        """The request's input tokens: read from the cache (the longest cached prefix), written
        to it (its marked prefixes not cached yet), and the rest."""
        blocks = _prefix_blocks(request)
        tokens = [
            len(json.dumps(_unmarked(b), sort_keys=True)) // CHARS_PER_TOKEN + 1 for b in blocks
        ]
        marks = [i for i, b in enumerate(blocks) if "cache_control" in b]
        keys = _prefix_keys(str(request.get("model", "")), blocks)
        read = written = 0
        with self._cache_lock:
            last = marks[-1] if marks else -1
            hit = max((i for i in range(last + 1) if keys[i] in self.cache), default=-1)
            read = sum(tokens[: hit + 1])
            if last > hit:
                written = sum(tokens[: last + 1]) - read
            self.cache.update(keys[i] for i in marks)
        return {
            "input_tokens": sum(tokens) - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
        }


def _event(name: str, **fields: Any) -> SSEvent:
    return name, json.dumps({"type": name, **fields})


def _prefix_blocks(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A request's prompt in cache order: tools, system blocks, then every message's blocks."""
    blocks: list[dict[str, Any]] = [dict(t) for t in request.get("tools") or ()]
    system = request.get("system")
    if isinstance(system, str):
        blocks.append({"type": "text", "text": system})
    elif isinstance(system, list):
        blocks += [dict(b) for b in system]
    for message in request.get("messages") or ():
        content = message.get("content")
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content, "role": message.get("role")})
        else:
            blocks += [{**b, "role": message.get("role")} for b in content or ()]
    return blocks


def _prefix_keys(model: str, blocks: list[dict[str, Any]]) -> list[str]:
    """For each block, the key of the prompt up to and including it (marks left out)."""
    digest = hashlib.sha256(model.encode())
    keys = []
    for block in blocks:
        digest.update(json.dumps(_unmarked(block), sort_keys=True).encode())
        keys.append(digest.copy().hexdigest())
    return keys


def _unmarked(block: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


def _invalid(request: Mapping[str, Any]) -> str | None:
    """What the API would refuse in the request's shape, if anything."""
    if not isinstance(request.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages: the first message must use the user role"
    uses: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if i and role == messages[i - 1].get("role"):
            return f"messages.{i}: roles must alternate between user and assistant"
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        if not content:
            return f"messages.{i}: content must not be empty"
        if role == "user":
            for block in blocks:
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in uses:
                    return f"messages.{i}: tool_result for an unknown tool_use id"
            uses = set()
        else:
            uses = {b.get("id", "") for b in blocks if b.get("type") == "tool_use"}
    return None
