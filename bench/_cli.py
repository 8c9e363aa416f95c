"""`python -m bench`: options, then each part of the benchmark in its own namespace."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopline_bus import KafkaBus
from loopline_infra import Infra, InfraError
from loopline_runtime import load_endpoints
from loopline_testing.chaos import PrivateInfra

from bench import _environment as environment
from bench._failover import failover
from bench._faust import faust_cpu
from bench._floor import floor
from bench._gateway import gateway
from bench._hostile import hostile
from bench._limits import limiter_cpu
from bench._live import BenchError, Driver, latency, throughput
from bench._long import long_run
from bench._namespace import Home, System, new_namespace
from bench._profile import Profiler, markdown, summarise
from bench._progress import elapsed, say
from bench._replay import replay
from bench._report import RESULTS_DIR, render, save
from bench._sizes import SIZE_HELP, Sizes
from bench._steps import StepLog

PARTS = (
    "latency",
    "throughput",
    "long",
    "hostile",
    "replay",
    "failover",
    "floor",
    "gateway",
    "limits",
)
FAILOVER = ("planner", "tool-executor", "memory")
"""Services whose failover is measured (recovery's work waits for no step)."""
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure Loopline with the demo model and the pure calculator tool: "
        "latency, throughput and CPU per durable step (four services as processes on Kafka), "
        "replay, failover, the same loop in one process without Kafka, and what the shared "
        "rate limiter and tenant quotas cost per model call (and faust-streaming doing the "
        "quota windows instead). Prints a table "
        "against the targets and appends the results to bench/results/ as JSON. Needs the "
        "infrastructure (make infra-up).",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="Run only this part (repeatable); default: all of them.",
    )
    parser.add_argument("--quick", action="store_true", help="Tiny sizes: checks the harness.")
    _add_choices(parser)
    for f in dataclasses.fields(Sizes):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=int,
            metavar="N",
            help=f"{SIZE_HELP[f.name]} (default {f.default})",
        )
    return parser.parse_args(argv)


def _add_choices(parser: argparse.ArgumentParser) -> None:
    """Options beyond the parts and sizes: profiling, failover, settings, output."""
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Also run the throughput workload again with py-spy attached to each service; "
        "flame graphs and a summary go to bench/profiles/.",
    )
    parser.add_argument(
        "--failover-services",
        type=_failover_services,
        default="planner,tool-executor,memory",
        help=f"Services to kill one replica of, comma separated, of {', '.join(FAILOVER)}.",
    )
    parser.add_argument(
        "--service-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="A variable for the services (repeatable), to measure a setting: "
        "--service-env LOOPLINE_KAFKA_LINGER_MS=0. Recorded with the results.",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        choices=(0, 3),
        default=3,
        metavar="BROKERS",
        help="Also measure latency and throughput on a private Kafka cluster of 3 brokers "
        "(replication 3, min.insync.replicas 2), beside the shared one-broker figures; 0: "
        "do not (default %(default)s).",
    )
    parser.add_argument(
        "--faust-broker",
        choices=("own", "shared"),
        default="own",
        help="Where the faust quota job runs: a Kafka broker started for it, whose CPU is "
        "counted (default), or the shared one, the job's CPU alone (quicker).",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="Where to save.")


def _failover_services(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAILOVER]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(FAILOVER)}, not {text!r}")
    return names


def sizes_of(args: argparse.Namespace) -> Sizes:
    """Sizes from the defaults (or --quick), overridden one by one."""
    sizes = Sizes().quick() if args.quick else Sizes()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Sizes)}
    return dataclasses.replace(sizes, **{k: v for k, v in given.items() if v is not None})


def _env_pair(pair: str) -> tuple[str, str]:
    name, sep, value = pair.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"wants NAME=VALUE, not {pair!r}")
    return name, value


async def run(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Every part asked for, each cleaning up after itself."""
    sizes, parts = sizes_of(args), set(args.only or PARTS)
    endpoints = load_endpoints()
    results["sizes"] = dataclasses.asdict(sizes)
    results["versions"] = await environment.versions(endpoints)
    results["durability"] = await environment.durability(endpoints)
    home = Home(dict(args.service_env))
    results["service_env"] = home.service_env
    try:
        if parts & {"latency", "throughput", "long", "hostile"} or args.profile:
            await _live(home, sizes, parts, args.profile, results)
        if parts & {"latency", "throughput"} and args.cluster:
            results["cluster"] = await _cluster(home, sizes, parts, args.cluster)
        if "failover" in parts:
            results["failover"] = [await _failover(home, s, sizes) for s in args.failover_services]
        if "replay" in parts:
            results["replay"] = await _replay(sizes)
        if "floor" in parts:
            results["floor"] = await _floors(sizes)
        if "gateway" in parts:
            results["gateway"] = await _gateway(home, sizes)
        if "limits" in parts:
            results["limits"] = await _limits(sizes, args.faust_broker)
    finally:
        home.remove()


async def _cluster(home: Home, sizes: Sizes, parts: set[str], brokers: int) -> dict[str, Any]:
    """Latency and throughput again, the services on a private cluster of `brokers` Kafka
    nodes (every topic with three copies, two in sync for a write) and the shared Redis and
    PostgreSQL."""
    say(f"bringing up a private Kafka of {brokers} brokers")
    results: dict[str, Any] = {"brokers": brokers}
    async with PrivateInfra(say=say, brokers=brokers, servers=()) as cluster:
        await _live(home, sizes, parts, False, results, kafka=cluster.infra)
    return results


async def _live(
    home: Home,
    sizes: Sizes,
    parts: set[str],
    profile: bool,
    results: dict[str, Any],
    *,
    kafka: Infra | None = None,
) -> None:
    """Latency, throughput and the profile, on one system of the four services (on the shared
    Kafka, or on `kafka`)."""
    ns = await new_namespace("c" if kafka else "", kafka)
    if kafka is not None:
        # In the namespace: the operator of a private cluster may produce there alone.
        results["durability"] = await environment.durability(ns.endpoints)
    system = System(ns, home, kafka=kafka)
    where = f" on {len(kafka.kafka_nodes)} brokers" if kafka else ""
    say(f"starting the four services (one process each){where}")
    system.up()
    bus = KafkaBus(settings=ns.endpoints.kafka, client_id="bench", signing_key=ns.signing_key())
    log = StepLog(ns.endpoints.kafka)
    await bus.start()
    await log.start()
    driver = Driver(system, bus, log)
    try:
        await driver.run(2, 3, "warm-up")
        if "latency" in parts:
            say(
                f"latency{where}: {sizes.latency_runs} runs of {sizes.latency_iterations} "
                "iterations"
            )
            results["latency"] = await latency(driver, sizes.latency_runs, sizes.latency_iterations)
        if "throughput" in parts:
            say(f"throughput{where}: {sizes.throughput_runs} concurrent runs")
            results["throughput"] = await throughput(
                driver, sizes.throughput_runs, sizes.throughput_iterations
            )
        if "long" in parts:
            say(f"long: one run of {sizes.long_iterations} steps")
            results["long"] = await long_run(driver, sizes.long_iterations)
        if "hostile" in parts and kafka is None:
            say(f"hostile: {sizes.hostile_runs} runs alone, then each beside a 100 kB goal")
            results["hostile"] = await hostile(driver, sizes.hostile_runs, sizes.hostile_iterations)
        if profile:
            results["profile"] = await _profile(driver, sizes)
    finally:
        await log.stop()
        await bus.stop()
        system.down()
        await ns.cleanup()


async def _profile(driver: Driver, sizes: Sizes) -> dict[str, Any]:
    folder = PROFILES_DIR / "latest"
    profiler = Profiler(folder)
    say("profile: attaching py-spy to each service, then the throughput workload again")
    profiler.start(driver.system.pids())
    try:
        measured = await throughput(driver, sizes.throughput_runs, sizes.throughput_iterations)
    finally:
        profiler.stop()
    summaries = {r.name: summarise(r.output) for r in profiler.recordings}
    (PROFILES_DIR / "SUMMARY.md").write_text(markdown(summaries, measured))
    say(f"profile: summary in {PROFILES_DIR / 'SUMMARY.md'}, stacks in {folder}")
    return {"throughput_under_py_spy": measured, "services": summaries, "folder": str(folder)}


async def _failover(home: Home, service: str, sizes: Sizes) -> dict[str, Any]:
    ns = await new_namespace()
    try:
        return await failover(ns, home, service, sizes.failover_runs, sizes.failover_iterations)
    finally:
        await ns.cleanup()


async def _replay(sizes: Sizes) -> dict[str, Any]:
    ns = await new_namespace("r")
    try:
        return await replay(ns, sizes.replay_events, sizes.replay_iterations)
    finally:
        await ns.cleanup()


async def _floors(sizes: Sizes) -> dict[str, Any]:
    ns = await new_namespace("f")
    args = (sizes.throughput_runs, sizes.throughput_iterations)
    one_by_one = (sizes.floor_latency_runs, sizes.latency_iterations)
    try:
        say("floor: the loop in this process, PostgreSQL and Redis as stores, no Kafka")
        with_stores = await floor(ns, *args, *one_by_one)
        say("floor: the loop in this process, no stores, no Kafka")
        return {"with_stores": with_stores, "no_io": await floor(None, *args, *one_by_one)}
    finally:
        await ns.cleanup()


async def _gateway(home: Home, sizes: Sizes) -> dict[str, Any]:
    ns = await new_namespace("g")
    try:
        return await gateway(ns, home, sizes.gateway_runs, sizes.gateway_iterations)
    finally:
        await ns.cleanup()


async def _limits(sizes: Sizes, faust_broker: str) -> dict[str, Any]:
    measured = await limiter_cpu(sizes.limiter_calls)
    if faust_broker == "own":
        measured["faust"] = await faust_cpu(sizes.faust_warmup, sizes.faust_events)
        return measured
    ns = await new_namespace("q")
    try:
        measured["faust"] = await faust_cpu(sizes.faust_warmup, sizes.faust_events, shared=ns)
    finally:
        await ns.cleanup()
    return measured


def main(argv: list[str] | None = None) -> None:
    """Run, print the table, save the JSON; exit 1 if the system misbehaved."""
    args = parse(argv)
    # aiokafka warns of retries it then wins (a new topic's leader not known yet): not news.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": environment.command(),
        "machine": environment.machine(),
        "commit": environment.git_commit(),
    }
    failed = None
    try:
        asyncio.run(run(args, results))
    except (BenchError, InfraError) as exc:
        failed = str(exc)
        results["error"] = failed
    results["duration_s"] = round(elapsed(), 1)
    if "versions" in results:
        print(render(results))
    path = save(results, args.results_dir)
    print(f"results saved to {path} ({results['duration_s']} s)")
    if failed:
        print(f"error: {failed}", file=sys.stderr)
        sys.exit(1)
