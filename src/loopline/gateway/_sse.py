"""Server-Sent Events: a run's stream as an HTTP response, for the API (JSON) and the page
(HTML fragments)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from loopline.gateway._feed import FollowerOverflowError
from loopline.gateway._follow import BadCursorError, RunStream, Sent, parse_cursor
from loopline.gateway._metrics import EVENTS_SENT, STREAMS

log = logging.getLogger("loopline.gateway.sse")

Render = Callable[[Sent], str]


def resume_point(request: Request) -> tuple[int, ...] | None:
    """The cursor a reconnecting client gives (Last-Event-ID header, or `last_event_id`)."""
    text = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if not text:
        return None
    try:
        return parse_cursor(text)
    except BadCursorError as exc:
        raise HTTPException(400, str(exc)) from None


def frame(data: str, *, event_id: str | None = None, event: str | None = None) -> str:
    """One SSE message (multi-line data split as the format asks)."""
    head = f"id: {event_id}\n" if event_id else ""
    if event:
        head += f"event: {event}\n"
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return head + body + "\n"


def as_json(sent: Sent) -> str:
    """An event as the API streams it: its envelope, and the topic it came from."""
    return json.dumps({"topic": sent.topic, **json.loads(sent.event.model_dump_json())})


def event_stream(stream: RunStream, render: Render) -> Response:
    """The HTTP response streaming `stream`; 204 (no reconnection) when the client already saw
    the run's end."""
    if stream.ended:
        stream.close()
        return Response(status_code=204)

    async def body() -> AsyncIterator[str]:
        STREAMS.inc()
        try:
            yield "retry: 1000\n\n"
            async for sent in stream.events():
                if sent is None:
                    yield ": keep-alive\n\n"
                    continue
                EVENTS_SENT.inc()
                yield frame(render(sent), event_id=sent.id)
            yield frame("{}", event="end")
        except FollowerOverflowError:
            log.info("an event stream's client fell behind; it resumes from its last event")
        finally:
            STREAMS.dec()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
