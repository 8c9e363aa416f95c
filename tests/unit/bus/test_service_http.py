"""The HTTP endpoints of a service process: /metrics, /healthz and /readyz through its life,
with readiness asked of the buses it started (no real Kafka: the in-memory bus)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopline_bus import InMemoryBus, Outbound
from loopline_events import GOALS, Envelope, GoalSubmitted
from loopline_runtime import (
    PROCESS_HEALTH,
    READY_FILE_VARIABLE,
    Health,
    HttpSettings,
    Phase,
    ReadyInfo,
    StatusServer,
    Stop,
    read_ready_file,
    serve_until_signalled,
)

TIMEOUT = 10.0


@pytest.fixture
def process_health() -> Iterator[Health]:
    yield PROCESS_HEALTH
    PROCESS_HEALTH.phase = Phase.STARTING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_service_is_live_at_once_ready_once_consuming_and_unready_while_stopping(
    process_health: Health, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready_file = tmp_path / "memory.ready"
    monkeypatch.setenv(READY_FILE_VARIABLE, str(ready_file))
    port = free_port()
    may_start, may_stop, handled = asyncio.Event(), asyncio.Event(), asyncio.Event()
    bus = InMemoryBus()  # its default middleware records into the process's registry

    async def handler(event: Envelope[Any]) -> Sequence[Outbound]:
        handled.set()
        return ()

    async def start() -> Stop:
        await bus.start()
        await bus.subscribe("memory", [GOALS.name], handler).start()
        await may_start.wait()

        async def stop() -> None:
            await may_stop.wait()
            await bus.stop()

        return stop

    service = asyncio.create_task(
        serve_until_signalled("memory", start, http=HttpSettings(port=port))
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as http:
        async with asyncio.timeout(TIMEOUT):
            while True:  # the server binds as the service begins to start
                try:
                    live = await http.get("/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.01)
        starting = await http.get("/readyz")
        assert (live.status_code, starting.status_code) == (200, 503)
        assert starting.text == "service is starting\n"

        may_start.set()
        async with asyncio.timeout(TIMEOUT):
            while not ready_file.exists():  # noqa: ASYNC110 - a file signals nothing
                await asyncio.sleep(0.01)
        assert json.loads(ready_file.read_text()) == {"pid": os.getpid(), "http_port": port}
        assert (await http.get("/readyz")).status_code == 200

        await bus.publish(
            GOALS.name, Envelope.of(GoalSubmitted(goal="2+3"), run_id="r", producer="t")
        )
        await asyncio.wait_for(handled.wait(), TIMEOUT)
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'loopline_events_consumed_total{topic="agent.goals",type="GoalSubmitted"}' in (
            metrics.text
        )
        assert "process_cpu_seconds_total" in metrics.text

        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            while process_health.phase is not Phase.STOPPING:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        stopping = await http.get("/readyz")
        assert (stopping.status_code, stopping.text) == (503, "service is stopping\n")
        assert (await http.get("/healthz")).status_code == 200

        may_stop.set()
        await asyncio.wait_for(service, TIMEOUT)
        with pytest.raises(httpx.ConnectError):
            await http.get("/healthz")


async def test_readiness_names_what_is_not_ready_yet() -> None:
    health = Health()
    bus = InMemoryBus(middleware=())
    health.register(bus)
    server = StatusServer(health, asyncio.get_running_loop(), HttpSettings()).start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            health.phase = Phase.SERVING
            unstarted = await http.get("/readyz")
            await bus.start()
            started = await http.get("/readyz")
            missing = await http.get("/nothing-here")
    finally:
        server.close()
        await bus.stop()
    assert (unstarted.status_code, unstarted.text) == (503, "in-memory bus not started\n")
    assert started.status_code == 200
    assert missing.status_code == 404


async def test_a_blocked_event_loop_is_not_healthy() -> None:
    server = StatusServer(Health(), asyncio.get_running_loop(), loop_timeout=0.2).start()
    answers: list[httpx.Response] = []

    def probe() -> None:
        answers.append(httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=TIMEOUT))

    try:
        asking = threading.Thread(target=probe)
        asking.start()
        time.sleep(1.0)  # noqa: ASYNC251 - blocking the loop is the point
        await asyncio.to_thread(asking.join)
    finally:
        server.close()
    assert answers[0].status_code == 503
    assert answers[0].text == "event loop did not answer within 0.2s\n"


async def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = StatusServer(Health(), asyncio.get_running_loop(), HttpSettings(port=port))
        with pytest.raises(OSError, match=f"cannot serve HTTP on 127.0.0.1:{port}"):
            server.start()


def test_the_ready_file_reads_its_json_and_its_older_plain_pid_form(tmp_path: Path) -> None:
    new, old, bad = tmp_path / "new", tmp_path / "old", tmp_path / "bad"
    new.write_text('{"pid": 41, "http_port": 9100}\n')
    old.write_text("41\n")
    bad.write_text("not a pid\n")
    assert read_ready_file(new) == ReadyInfo(pid=41, http_port=9100)
    assert read_ready_file(old) == ReadyInfo(pid=41, http_port=None)
    assert read_ready_file(bad) is None
    assert read_ready_file(tmp_path / "absent") is None
