"""`loopline infra`: a second, private set of servers is brought up, checked and taken down."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from loopline_infra import Infra, Paths, Ports, default_paths
from loopline_runtime import Endpoints
from loopline_testing.chaos import free_ports


def test_status_json_reports_every_component_ready(loopline_endpoints: Endpoints) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "infra", "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert set(status) == {"kafka", "redis", "postgres", "prometheus"}
    assert all(c["state"] == "ready" and c["pid"] for c in status.values())
    assert status["kafka"]["endpoint"] == loopline_endpoints.kafka.bootstrap
    assert status["prometheus"]["endpoint"] == Infra().component("prometheus").endpoint


def test_a_kafka_client_outside_the_project_lists_the_broker(
    loopline_endpoints: Endpoints,
) -> None:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is part of the test set-up (.ci/run installs it)"
    # Connected as the README shows: the options `loopline infra credentials --kcat` prints.
    options = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "infra", "credentials", "--kcat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    listed = subprocess.run(
        [kcat, *options, "-L", "-m", "10"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "1 brokers:" in listed
    assert f"at {loopline_endpoints.kafka.bootstrap}" in listed


@pytest.fixture
def private_infra() -> Iterator[Infra]:
    """Servers of their own, on other ports and in a home of their own."""
    base = default_paths()
    base.home.mkdir(parents=True, exist_ok=True)
    # Under the project's home, not /tmp/pytest-of-root (0700): when we are root, PostgreSQL
    # runs as its own account and must be able to reach its data folder.
    home = Path(tempfile.mkdtemp(prefix="test-infra-", dir=base.home))
    home.chmod(0o755)
    paths = Paths(project=base.project, home=home, cache=base.cache)
    kafka, controller, redis, postgres, prometheus = free_ports(5)  # whatever else runs here
    infra = Infra(paths, Ports(kafka, controller, redis, postgres, prometheus))
    yield infra
    infra.down(wipe=True, say=lambda _: None)
    shutil.rmtree(home, ignore_errors=True)


async def test_up_is_idempotent_and_down_stops_only_what_up_started(
    private_infra: Infra, loopline_endpoints: Endpoints
) -> None:
    lines: list[str] = []
    try:
        statuses = await private_infra.up(say=lines.append)
        assert [s.state for s in statuses] == ["ready"] * 4
        pids = {s.name: s.pid for s in statuses}
        _assert_prometheus_watches_its_own_home(private_infra)

        # Services connected meanwhile stay connected: `up` again changes no user of Redis.
        memory = aioredis.from_url(private_infra.endpoints("memory").redis.url.get_secret_value())
        try:
            connection = await memory.client_id()
            again = await private_infra.up(say=lines.append)
            assert await memory.client_id() == connection
        finally:
            await memory.aclose()
        assert {s.name: s.pid for s in again} == pids
        assert sum("already running" in line for line in lines) == 4
    finally:
        private_infra.down(say=lines.append)
    assert [s.state for s in await private_infra.status()] == ["stopped"] * 4
    assert (private_infra.component("postgres").dir / "data" / "PG_VERSION").exists()
    assert (private_infra.component("kafka").dir / "data" / "meta.properties").exists()
    assert (private_infra.component("prometheus").dir / "data").is_dir()

    # The shared servers of the session were not touched.
    shared = await Infra().status()
    assert all(s.state == "ready" for s in shared)

    private_infra.down(wipe=True, say=lines.append)
    assert not private_infra.component("kafka").dir.exists()
    assert not private_infra.component("postgres").dir.exists()
    assert not private_infra.component("prometheus").dir.exists()


def _api(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def _assert_prometheus_watches_its_own_home(infra: Infra) -> None:
    """The private Prometheus reads the private home's target files and every checked-in rule."""
    base = infra.component("prometheus").endpoint
    config = _api(base, "/api/v1/status/config")["yaml"]
    assert f"{infra.paths.service_targets}/*.json" in config
    assert str(default_paths().service_targets) not in config
    rules = [r for g in _api(base, "/api/v1/rules")["groups"] for r in g["rules"]]
    assert {r["health"] for r in rules} <= {"ok", "unknown"}
    checked_in = (infra.paths.prometheus_rules / "loopline.yml").read_text()
    assert len(rules) == checked_in.count("- record:") + checked_in.count("- alert:")
