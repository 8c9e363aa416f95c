"""A whole Loopline for end-to-end tests: the four services (and the gateway, when asked) as real
processes, in a namespace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from loopline_bus import SIGNED_TYPES, EventStream, TopicsUnfitError
from loopline_events import (
    ALL_TOPICS,
    RESULTS,
    Envelope,
    EventDecodeError,
    Payload,
    RunCancelled,
    RunCompleted,
    RunFailed,
    SigningKey,
    decode_event,
    encode_event,
)
from loopline_infra import (
    GATEWAY,
    OPERATOR,
    SERVICES,
    CredentialStore,
    Services,
    create_topics,
    default_paths,
)
from loopline_memory.adapters.store import RunStore
from loopline_memory.domain import RunState
from loopline_runtime import Endpoints, KafkaSettings, schema_name

from loopline_testing.effects import SCHEMA as EFFECTS_SCHEMA
from loopline_testing.plugin import (
    TEST_PARTITIONS,
    delete_topics,
    granted,
    run_apart,
    session_access,
    small_topics,
    unique_prefix,
)

TEST_AGENTS = """
[agents.default]
system_prompt = "You are a careful assistant."
model = "demo"
tools = ["calculator", "current_time", "http_get"]
max_steps = 10
deadline_s = 120

[agents.calculator]
system_prompt = "Arithmetic only."
model = "demo"
tools = ["calculator"]
max_steps = 10
deadline_s = 120

[agents.openai]
system_prompt = "You are a careful assistant."
model = "openai:gpt-test"
tools = ["calculator", "current_time"]
max_steps = 5
deadline_s = 120

[agents.openai_tools]
system_prompt = "You are a careful assistant."
model = "openai:gpt-test"
tools = ["calculator", "current_time", "http_get"]
max_steps = 5
deadline_s = 120

[agents.claude]
system_prompt = "You are a careful assistant."
model = "anthropic:claude-sonnet-4-5"
tools = ["calculator", "current_time"]
max_steps = 5
deadline_s = 120

[agents.fallback]
system_prompt = "You are a careful assistant."
model = "openai:gpt-test"
fallback_models = ["anthropic:claude-sonnet-4-5"]
tools = ["calculator"]
max_steps = 5
deadline_s = 120

[agents.quota_fail]
system_prompt = "You are a careful assistant."
model = "openai:gpt-test"
tools = ["calculator"]
max_steps = 5
deadline_s = 120
on_quota = "fail"

[agents.quota_pause]
system_prompt = "You are a careful assistant."
model = "openai:gpt-test"
tools = ["calculator"]
max_steps = 5
deadline_s = 120
on_quota = "pause"

[agents.memo]
system_prompt = "You keep and recall facts."
model = "demo"
tools = ["remember", "recall", "calculator"]
max_steps = 5
deadline_s = 120
recall_limit = 3

[agents.compact]
system_prompt = "You count."
model = "demo"
tools = ["calculator"]
max_steps = 40
deadline_s = 240
context_budget_tokens = 300

[agents.counter]
system_prompt = "You count, for as long as you are let."
model = "demo"
tools = ["calculator"]
max_steps = 1000
deadline_s = 600

[agents.effects]
system_prompt = "You record side effects."
model = "demo"
tools = ["record_effect"]
max_steps = 100
deadline_s = 900

[agents.reader]
system_prompt = "You read what you are asked to read."
model = "openai:gpt-test"
tools = ["http_get", "read_artifact", "long_text"]
max_steps = 60
deadline_s = 600
context_budget_tokens = 1000000

[agents.skimmer]
system_prompt = "You read long texts in parts."
model = "openai:gpt-test"
tools = ["read_artifact", "long_text"]
max_steps = 60
deadline_s = 600
context_budget_tokens = 120000

[agents.summarizer]
system_prompt = "You count."
model = "openai:gpt-test"
tools = ["calculator"]
max_steps = 40
deadline_s = 240
context_budget_tokens = 200
compaction = "summarize"

[agents.looper]
system_prompt = "You are a careful assistant."
model = "openai:gpt-test"
tools = ["calculator"]
max_steps = 30
deadline_s = 120
no_progress_repeats = 3
on_no_progress = "nudge"
"""
"""The agent profiles end-to-end tests run with (LOOPLINE_AGENTS_FILE)."""

RESULT_TYPES = (RunCompleted, RunFailed, RunCancelled)


class ResultCollector:
    """Every run's result on agent.results, as they come."""

    def __init__(self, stream: EventStream):
        self.stream = stream
        self.seen: dict[str, Envelope[Any]] = {}

    async def wait_for(
        self,
        run_ids: set[str],
        timeout: float = 60.0,
        *,
        answers: tuple[type[Payload], ...] = RESULT_TYPES,
    ) -> dict[str, Envelope[Any]]:
        """The results of `run_ids` (the first event of `answers` of each: a run's end unless
        told otherwise), once all have arrived."""

        async def collect() -> None:
            async for event in self.stream.events():
                if isinstance(event.payload, answers):
                    self.seen.setdefault(event.run_id, event)
                if run_ids <= self.seen.keys():
                    return

        if not run_ids <= self.seen.keys():
            await asyncio.wait_for(collect(), timeout)
        return {r: self.seen[r] for r in run_ids}


@dataclass
class System:
    """A running Loopline: its services, its namespace and the variables that reach it."""

    services: Services
    kafka: KafkaSettings
    env: dict[str, str]
    """The operator's variables (what the CLI is run with), with the namespace's."""
    store: CredentialStore | None = None
    """Every principal's credentials (None when the servers were given by the env)."""

    def kill(self, instance: str, timeout: float = 10.0) -> int:
        """SIGKILL one service instance (`memory`, `planner-2`...), as a crash would, and wait
        until it is gone (so a restart does not find it still running); its pid."""
        pid = self.services.kill(instance)
        deadline = time.monotonic() + timeout
        while any(s.name == instance and s.pid == pid for s in self.services.status()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{instance} (pid {pid}) still runs {timeout:g} s after SIGKILL")
            time.sleep(0.01)
        return pid

    async def restart(self, *names: str, replicas: int = 1) -> None:
        """Start again the instances of `names` that are not running; wait until they consume."""
        await asyncio.to_thread(self.services.up, names, replicas=replicas, say=lambda _: None)

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway's API and page (a system started with `gateway=True`)."""
        for status in self.services.status():
            if status.name == GATEWAY and status.api_url is not None:
                return status.api_url
        raise LookupError("this system runs no gateway: start it with gateway=True")

    def create_key(self, tenant: str, role: str = "user") -> str:
        """A new API key of the gateway (`loopline keys create`); blocks (use a thread)."""
        done = self.cli("keys", "create", "--tenant", tenant, "--role", role, "--json")
        assert done.returncode == 0, done.stderr
        key: str = json.loads(done.stdout)["key"]
        return key

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run `loopline ARGS` against this system, as a user would; blocks (use a thread)."""
        return subprocess.run(
            [sys.executable, "-m", "loopline.cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=timeout,
            check=False,
        )

    def kcat_args(self, principal: str = OPERATOR) -> list[str]:
        """kcat's options that connect to this system's Kafka as `principal`."""
        if self.store is None:
            return ["-b", self.kafka.bootstrap]
        return self.store.require().kcat_args(principal)

    def signing_key(self, principal: str = OPERATOR) -> SigningKey | None:
        """The key `principal` signs goals and commands with (None without credentials)."""
        return None if self.store is None else self.store.require().signing_key(principal)

    def kcat_produce(
        self,
        topic: str,
        key: str,
        value: str | bytes,
        principal: str = OPERATOR,
        *,
        signed: bool = True,
    ) -> None:
        """Produce one record with kcat, a librdkafka client: its default partitioner is
        CRC32-based, not the murmur2 of Java clients and aiokafka; blocks (use a thread).

        A goal or command is signed with `principal`'s key first, as `loopline sign --as
        PRINCIPAL | kcat` does (unless `signed` is false)."""
        kcat = shutil.which("kcat")
        assert kcat, "kcat is part of the test set-up (.ci/run and make install it)"
        data = value.encode() if isinstance(value, str) else value
        signer = self.signing_key(principal) if signed else None
        if signer is not None:
            with contextlib.suppress(EventDecodeError):
                event = decode_event(data)
                if event.type in SIGNED_TYPES:
                    data = encode_event(signer.sign(event))
        subprocess.run(
            [
                kcat,
                "-P",
                *self.kcat_args(principal),
                "-t",
                self.kafka.topic_prefix + topic,
                "-k",
                key,
            ],
            input=data,
            check=True,
            timeout=60,
        )

    async def memory_states(self, run_id: str) -> tuple[RunState | None, RunState | None]:
        """Memory's state of the run as Redis holds it and as PostgreSQL does (each its head
        and its history's rows, put together the way memory loads them)."""
        pool = await asyncpg.create_pool(self.env["LOOPLINE_POSTGRES_DSN"], min_size=1, max_size=2)
        redis = aioredis.from_url(self.env["LOOPLINE_REDIS_URL"])
        store = RunStore(pool, redis, schema_name("memory", self.kafka.topic_prefix), self.prefix)
        try:
            hot, durable = await store.load_hot(run_id), await store.load_durable(run_id)
        finally:
            await redis.aclose()
            await pool.close()
        return (hot.state if hot else None), (durable.state if durable else None)

    @property
    def prefix(self) -> str:
        """The namespace (topic prefix) of the system."""
        return self.kafka.topic_prefix

    @contextlib.asynccontextmanager
    async def results(self) -> AsyncIterator[ResultCollector]:
        """Collects every run's result of the namespace (from its beginning)."""
        stream = EventStream(self.kafka, topics=[RESULTS.name])
        await stream.start(from_beginning=True)
        try:
            yield ResultCollector(stream)
        finally:
            await stream.stop()


@pytest.fixture
def start_system(
    loopline_endpoints: Endpoints,
    loopline_access: CredentialStore | None,
    topic_prefix: str,
    cleanup_namespace: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., System]]:
    """A function starting the four services (`replicas` of each) in the test's namespace.

    The test process gets the services' agent profiles too, so replays in the test fold with
    the profiles memory used.
    """
    base = default_paths()
    base.home.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="e2e-", dir=base.home))
    monkeypatch.setenv("LOOPLINE_AGENTS_FILE", str(home / "agents.toml"))
    monkeypatch.setenv("LOOPLINE_LIMITS_FILE", str(home / "limits.toml"))
    started: list[System] = []

    def start(
        replicas: int = 1,
        env_extra: dict[str, str] | None = None,
        agents: str = TEST_AGENTS,
        limits: str = "",
        gateway: bool = False,
    ) -> System:
        system = launch_system(
            loopline_endpoints,
            topic_prefix,
            home,
            replicas,
            env_extra,
            agents,
            limits,
            gateway=gateway,
            store=loopline_access,
        )
        started.append(system)
        return system

    yield start
    for system in started:
        stop_system(system)
    shutil.rmtree(home, ignore_errors=True)


def launch_system(
    endpoints: Endpoints,
    namespace: str,
    home: Path,
    replicas: int = 1,
    env_extra: dict[str, str] | None = None,
    profiles: str = TEST_AGENTS,
    limits: str = "",
    *,
    gateway: bool = False,
    store: CredentialStore | None = None,
    partitions: int | None = TEST_PARTITIONS,
) -> System:
    """Start the four services (`replicas` of each) on `endpoints`, in `namespace`, with the
    test agent profiles (or `profiles`) and rate limits and quotas (`limits`, TOML: none by
    default), and the gateway (on a free port) when asked; their pid files, logs, agents and
    limits files live in `home`. The namespace's topics have `partitions` each (None: as
    declared): fewer than declared, which the services accept (saying so), to spare the
    broker a few thousand partitions made and deleted per test run.

    With the servers' credentials (`store`; those of the session's servers when `endpoints`
    reach them), the namespace's topics are made by the cluster's admin first (its ACLs are
    the caller's: `granted`), and each service runs as its own principal."""
    store = store or session_access(endpoints)
    agents = home / "agents.toml"
    agents.write_text(profiles)
    limits_file = home / "limits.toml"
    limits_file.write_text(limits)
    common = {
        "LOOPLINE_KAFKA_TOPIC_PREFIX": namespace,
        "LOOPLINE_AGENTS_FILE": str(agents),
        "LOOPLINE_LIMITS_FILE": str(limits_file),
        "LOOPLINE_TOOLS_ALLOW_PRIVATE_NETWORKS": "1",
        "LOOPLINE_GATEWAY_PORT": "0",
        **(env_extra or {}),
    }
    kafka = endpoints.kafka.model_copy(update={"topic_prefix": namespace})
    operator = {**endpoints.env(), **common}
    if store is not None:
        with contextlib.suppress(TopicsUnfitError):  # the services refuse to start, and say why
            specs = ALL_TOPICS if partitions is None else small_topics(partitions)
            asked = replication_asked(kafka, common)
            run_apart(create_topics(store.require(), asked, specs))
    services = Services(home, common if store is not None else operator, store)
    names = (*SERVICES, GATEWAY) if gateway else SERVICES
    try:
        services.up(names, replicas=replicas, say=lambda _: None)
    except BaseException:
        services.down(say=lambda _: None)  # what did start must not outlive the failure
        raise
    system = System(services, kafka, operator, store)
    _RUNNING.append(system)
    return system


def stop_system(system: System) -> None:
    """Stop every service instance of `system`."""
    system.services.down(say=lambda _: None)
    with contextlib.suppress(ValueError):
        _RUNNING.remove(system)


_RUNNING: list[System] = []
"""The systems this process started and has not stopped: a failing test keeps their logs."""

KEPT_LOG_LINES = 30


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """When a test fails, copy the logs of the systems running then to
    `.loopline/test-logs/TEST/` (a test's own folder goes with it) and show their last lines."""
    report = yield
    # A system whose folder is gone was stopped by a harness of its own.
    _RUNNING[:] = [s for s in _RUNNING if s.services.dir.is_dir()]
    if report.failed and _RUNNING:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in item.nodeid)
        kept = default_paths().home / "test-logs" / f"{name}-{report.when}"
        tails = []
        for system in _RUNNING:
            folder = kept / system.prefix.rstrip(".")
            try:
                shutil.copytree(system.services.dir, folder, dirs_exist_ok=True)
            except OSError as exc:  # never the report's undoing
                tails.append(f"--- {system.services.dir}: not kept ({exc})")
                continue
            for log in sorted(folder.glob("*.log")):
                lines = log.read_text(errors="replace").splitlines()[-KEPT_LOG_LINES:]
                tails.append(f"--- {log.relative_to(kept)}\n" + "\n".join(lines))
        report.sections.append(("service logs", f"kept in {kept}\n" + "\n".join(tails)))
    return report


REPLICATION_VARIABLES = {
    "replication_factor": "LOOPLINE_KAFKA_REPLICATION_FACTOR",
    "min_insync_replicas": "LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS",
    "replication_by_class": "LOOPLINE_KAFKA_REPLICATION_BY_CLASS",
    "min_insync_by_class": "LOOPLINE_KAFKA_MIN_INSYNC_BY_CLASS",
}


def replication_asked(kafka: KafkaSettings, env: dict[str, str]) -> KafkaSettings:
    """`kafka` with the replication settings `env` gives the services."""
    update = {f: json.loads(env[v]) for f, v in REPLICATION_VARIABLES.items() if v in env}
    return kafka.model_copy(update=update)


@pytest.fixture
def system(start_system: Callable[..., System]) -> System:
    """The four services, one instance of each, in the test's namespace."""
    return start_system()


@contextlib.contextmanager
def running_system(
    endpoints: Endpoints,
    *,
    replicas: int = 1,
    env_extra: dict[str, str] | None = None,
    gateway: bool = False,
    agents: str = TEST_AGENTS,
    partitions: int | None = TEST_PARTITIONS,
) -> Iterator[System]:
    """The four services in a namespace of their own, with the test agent profiles (or
    `agents`), for as long as the block runs (a whole test module, say); then stopped, and
    the namespace dropped. The test process gets the services' profiles meanwhile, so replays
    in the test fold with the profiles memory used."""
    base = default_paths()
    base.home.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="e2e-", dir=base.home))
    store = session_access(endpoints)
    with granted(store, unique_prefix()) as namespace, pytest.MonkeyPatch.context() as env:
        env.setenv("LOOPLINE_AGENTS_FILE", str(home / "agents.toml"))
        try:
            system = launch_system(
                endpoints,
                namespace,
                home,
                replicas,
                env_extra,
                agents,
                gateway=gateway,
                store=store,
                partitions=partitions,
            )
            try:
                yield system
            finally:
                stop_system(system)
        finally:
            # Its own thread and loop: the block may be left from inside a running loop.
            run_apart(drop_namespace(endpoints, namespace))
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def cleanup_namespace(
    loopline_endpoints: Endpoints, topic_prefix: str
) -> AsyncIterator[None]:
    """After the test: drop the namespace's topics, PostgreSQL schemas and Redis keys."""
    yield
    await drop_namespace(loopline_endpoints, topic_prefix)


async def drop_namespace(endpoints: Endpoints, namespace: str) -> None:
    """Delete the namespace's topics, PostgreSQL schemas and Redis keys."""
    await delete_topics(endpoints.kafka.model_copy(update={"topic_prefix": namespace}))
    conn = await asyncpg.connect(endpoints.postgres.dsn.get_secret_value())
    try:
        for base in ("memory", "recovery", "executor", "artifacts", "gateway", EFFECTS_SCHEMA):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_name(base, namespace)}" CASCADE')
    finally:
        await conn.close()
    redis = aioredis.from_url(endpoints.redis.url.get_secret_value())
    try:
        keys = [k async for k in redis.scan_iter(match=f"{namespace}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
