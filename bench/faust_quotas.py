"""The tenant quota windows as a faust-streaming job, measured: CPU per model call.

Run by `bench._faust` in an environment of its own (`uv run --no-project --with
faust-streaming ...`: faust pins dependencies of its own, which the project's lock does not
take), so this file imports nothing of Loopline. It reads the ModelDecided events of a topic
(one per model call), re-keys them by tenant (faust's `group_by`, through a repartition
topic, as windows per tenant need), and adds each call's tokens and micro-USD to two tables
of one-minute tumbling windows kept a day: what the rolling hour and day sums are read from.
After `--warmup` events it starts counting its own CPU (`time.process_time`, every thread),
and after `--measure` more it prints one JSON line and stops.

What it leaves out makes it a lower bound: reading the windows before each call (the planner
would have to ask this worker, or have it copy them where the planner reads). The broker's
work for the repartition and changelog topics is measured by `bench._faust` on a broker of
its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import timedelta
from typing import Any

import faust

PRICES = {"prompt": 3.0, "cached": 0.3, "completion": 15.0}
"""USD per million tokens (one model's entry; the bench's events all name it)."""


def _usage(value: bytes) -> tuple[str, int, int]:
    event = json.loads(value)
    usage = event["payload"]["usage"]
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
    cached = usage.get("cached_tokens", 0)
    micro = (
        (usage["prompt_tokens"] - cached) * PRICES["prompt"]
        + cached * PRICES["cached"]
        + usage["completion_tokens"] * PRICES["completion"]
    )
    return event["tenant"], tokens, round(micro)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    username = os.environ.get("FAUST_SASL_USERNAME")
    credentials = (
        faust.SASLCredentials(
            username=username,
            password=os.environ["FAUST_SASL_PASSWORD"],
            mechanism=os.environ.get("FAUST_SASL_MECHANISM", "SCRAM-SHA-512"),
        )
        if username
        else None
    )
    app = faust.App(
        args.app_id,
        datadir=args.datadir,
        broker=f"kafka://{args.bootstrap}",
        broker_credentials=credentials,
        store="memory://",
        value_serializer="raw",
        topic_partitions=args.partitions,
        web_enabled=False,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        loop=asyncio.get_running_loop(),
    )
    source = app.topic(args.topic, value_type=bytes, value_serializer="raw")
    expires = timedelta(days=1)
    tokens = app.Table("tokens", default=int).tumbling(60, expires=expires)
    cost = app.Table("cost", default=int).tumbling(60, expires=expires)
    done = asyncio.Event()
    seen = {"events": 0}
    marks: dict[str, float] = {}

    # Named as the app: its repartition topic is then `<app id>-<topic>-by-tenant-repartition`,
    # in the namespace (and its ACLs), not under the module's name.
    @app.agent(source, name=args.app_id)  # type: ignore[untyped-decorator]
    async def windows(stream: Any) -> None:
        async for value in stream.group_by(lambda v: json.loads(v)["tenant"], name="by-tenant"):
            tenant, spent, micro = _usage(value)
            tokens[tenant] += spent
            cost[tenant] += micro
            seen["events"] += 1
            if seen["events"] == args.warmup:
                marks["cpu"], marks["wall"] = time.process_time(), time.monotonic()
                print(json.dumps({"warm": True}), flush=True)  # the broker's window starts
            if seen["events"] == args.warmup + args.measure:
                marks["cpu_end"], marks["wall_end"] = time.process_time(), time.monotonic()
                done.set()

    started = time.process_time()
    await app.start()
    try:
        await asyncio.wait_for(done.wait(), args.timeout)
    finally:
        await app.stop()
    cpu = marks["cpu_end"] - marks["cpu"]
    return {
        "events": args.measure,
        "cpu_s": round(cpu, 3),
        "wall_s": round(marks["wall_end"] - marks["wall"], 3),
        "ms_per_call": round(1000.0 * cpu / args.measure, 4),
        "start_cpu_s": round(marks["cpu"] - started, 3),
        "faust": faust.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--measure", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args))), flush=True)


if __name__ == "__main__":
    main()
