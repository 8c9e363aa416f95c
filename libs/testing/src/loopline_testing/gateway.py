"""A client of the gateway for tests and the bench: JSON calls and Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Keys:
    """API keys of a system's gateway: two tenants' users and an operator."""

    alice: str
    bob: str
    operator: str


@dataclass(frozen=True)
class ServerEvent:
    """One message of an event stream."""

    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


async def server_events(response: httpx.Response) -> AsyncIterator[ServerEvent]:
    """The messages of an event stream's response, as they come (comments skipped)."""
    event_id: str | None = None
    event, data = "message", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield ServerEvent(event_id, event, "\n".join(data))
            event, data = "message", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)


def client(base_url: str, key: str | None = None, **options: Any) -> httpx.AsyncClient:
    """An HTTP client of the gateway at `base_url`, authenticated with `key`."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60.0, **options)


async def follow(
    http: httpx.AsyncClient,
    run_id: str,
    *,
    last_event_id: str | None = None,
    limit: int | None = None,
) -> list[ServerEvent]:
    """The run's events from its stream (after `last_event_id`), until its `end` event or
    until `limit` events were read (then the connection is dropped)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    got: list[ServerEvent] = []
    async with http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as response:
        if response.status_code == 204:
            return got
        response.raise_for_status()
        async for message in server_events(response):
            if message.event == "end":
                break
            got.append(message)
            if limit is not None and len(got) >= limit:
                break
    return got
