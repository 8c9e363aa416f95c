"""The benchmark's outputs: the table of figures against targets and the floor, and the JSON
file appended to bench/results/."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._environment import durability_line
from bench._sizes import PEERS, TARGETS

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    """One figure: where it is in the results, its target, the floor's figure and peers'."""

    label: str
    measured: Callable[[dict[str, Any]], float | None]
    target: str | None = None
    higher_is_better: bool = True
    floor: Callable[[dict[str, Any]], float | None] | None = None
    peers: str = ""


def _get(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def read(results: dict[str, Any]) -> float | None:
        value: Any = results
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, int | float) else None

    return read


def _peers(key: str) -> str:
    return " / ".join(f"{v[key]:g}" for v in PEERS.values())


ROWS = (
    Row(
        "throughput, durable steps/s",
        _get("throughput", "steps_per_s"),
        "throughput_steps_per_s",
        floor=_get("steps_per_s"),
        peers=_peers("steps_per_s"),
    ),
    Row(
        "machine CPU per durable step, ms",
        _get("throughput", "cpu", "ms_per_step"),
        "cpu_ms_per_step",
        higher_is_better=False,
        floor=_get("cpu", "ms_per_step"),
        peers=_peers("cpu_ms_per_step"),
    ),
    Row(
        "latency p50 per durable step, ms",
        _get("latency", "per_step", "p50_ms"),
        "latency_p50_ms",
        higher_is_better=False,
        floor=_get("one_run_at_a_time_ms_per_step"),
        peers=_peers("latency_ms"),
    ),
    Row(
        "latency p99 per durable step, ms",
        _get("latency", "per_step", "p99_ms"),
        "latency_p99_ms",
        higher_is_better=False,
    ),
    Row("latency mean per durable step, ms", _get("latency", "per_step", "mean_ms")),
    Row(
        "replay, events/s read + folded",
        _get("replay", "in_process", "events_per_s"),
        "replay_events_per_s",
    ),
    Row("replay, events/s folded alone", _get("replay", "in_process", "fold_events_per_s")),
    Row(
        "loopline replay CLI, records/s scanned",
        _get("replay", "cli", "records_scanned_per_s"),
        "replay_events_per_s",
    ),
    Row("loopline replay CLI, wall s", _get("replay", "cli", "wall_s")),
    Row("long run, bytes on Kafka at step 10", _get("long", "bytes_per_step", "10")),
    Row("long run, bytes on Kafka at step 100", _get("long", "bytes_per_step", "100")),
    Row("long run, bytes on Kafka at step 1000", _get("long", "bytes_per_step", "1000")),
    Row("long run, largest context, bytes", _get("long", "largest_context_bytes")),
    Row("long run, steps 1-20, mean ms", _get("long", "first_20_steps", "mean_ms")),
    Row("long run, last 20 steps, mean ms", _get("long", "last_20_steps", "mean_ms")),
    Row(
        "delay a 100 kB hostile goal causes a run, s",
        _get("hostile", "delay_s"),
        "hostile_delay_s",
        higher_is_better=False,
    ),
    Row("gateway, SSE clients that saw their run's end", _get("gateway", "runs_completed")),
    Row(
        "gateway CPU per streamed event, µs",
        _get("gateway", "gateway_us_per_event"),
    ),
    Row(
        "long run, last 20 over first 20",
        _get("long", "late_over_early"),
        "late_over_early",
        higher_is_better=False,
    ),
    Row(
        "limiter CPU per model call, ms",
        _get("limits", "rates", "ms_per_call"),
        higher_is_better=False,
    ),
    Row(
        "limiter + quotas CPU per model call, ms",
        _get("limits", "rates_and_quotas", "ms_per_call"),
        higher_is_better=False,
    ),
    Row(
        "quota windows in Redis, ms per call",
        _get("limits", "quotas_ms_per_call"),
        "quota_ms_per_call",
        higher_is_better=False,
    ),
    Row(
        "quota windows in faust (job + broker), ms",
        _get("limits", "faust", "ms_per_call"),
        "quota_ms_per_call",
        higher_is_better=False,
    ),
    Row("  of which the faust job, ms", _get("limits", "faust", "job_ms_per_call")),
    Row("  of which its broker, ms", _get("limits", "faust", "broker_ms_per_call")),
)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _verdict(row: Row, value: float | None) -> tuple[str, str]:
    if row.target is None:
        return "", ""
    target = TARGETS[row.target]
    sign = ">=" if row.higher_is_better else "<="
    if value is None:
        return f"{sign} {_fmt(target)}", ""
    met = value >= target if row.higher_is_better else value <= target
    return f"{sign} {_fmt(target)}", "met" if met else "MISSED"


def table(results: dict[str, Any]) -> str:
    """The figures against the targets (on one broker), the same figures on a cluster of
    three brokers, the floor (with stores / without) and the peers."""
    floors = results.get("floor", {})
    cluster = results.get("cluster")
    head: tuple[str, ...] = (
        "figure",
        "measured",
        "target",
        "",
        *([f"{cluster['brokers']} brokers"] if cluster else []),
        "floor PG+Redis",
        "floor no I/O",
        "DBOS / LangGraph",
    )
    lines = [head]
    for row in ROWS:
        value = row.measured(results)
        target, verdict = _verdict(row, value)
        on_cluster = row.measured(cluster) if cluster else None
        floor_io = (
            row.floor(floors["with_stores"]) if row.floor and "with_stores" in floors else None
        )
        floor_none = row.floor(floors["no_io"]) if row.floor and "no_io" in floors else None
        lines.append(
            (
                row.label,
                _fmt(value),
                target,
                verdict,
                *([_fmt(on_cluster) if on_cluster is not None else ""] if cluster else []),
                _fmt(floor_io),
                _fmt(floor_none),
                row.peers,
            )
        )
    for f in results.get("failover", []):
        target, verdict = _verdict(Row("", lambda _: None, "failover_s", False), f["worst_s"])
        lines.append(
            (
                f"failover {f['service']}, s",
                _fmt(f["worst_s"]),
                target,
                verdict,
                *([""] if cluster else []),
                "",
                "",
                "",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    rendered = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    rendered.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(r.rstrip() for r in rendered)


BUSY_MACHINE_SHARE = 0.2
"""Above this share of the machine's busy time going to other processes, say so."""


WINDOWS = (
    ("throughput", ("throughput", "cpu")),
    ("throughput on the cluster", ("cluster", "throughput", "cpu")),
    ("replay in process", ("replay", "in_process", "cpu")),
    ("floor with stores", ("floor", "with_stores", "cpu")),
    ("floor without I/O", ("floor", "no_io", "cpu")),
)
"""Where the results keep a CPU window, by the part it measured."""


def noise_warnings(results: dict[str, Any]) -> list[str]:
    """A warning for each part during which other processes took a good share of the CPU."""
    warnings = []
    for part, path in WINDOWS:
        cpu: Any = results
        for key in path:
            cpu = cpu.get(key, {}) if isinstance(cpu, dict) else {}
        busy = cpu.get("machine_busy_s") if isinstance(cpu, dict) else None
        if busy and cpu["other_processes_s"] / busy > BUSY_MACHINE_SHARE:
            warnings.append(
                f"WARNING: during {part}, processes outside the benchmark used "
                f"{cpu['other_processes_s']} s of the machine's {busy} s of busy CPU: its "
                "figures are pessimistic."
            )
    return warnings


def cpu_breakdown(results: dict[str, Any], where: str = "") -> str:
    """CPU per durable step of each process during the throughput window."""
    cpu = results.get("throughput", {}).get("cpu")
    if not cpu:
        return ""
    lines = [f"CPU per durable step during the throughput window{where} (ms):"]
    for name, ms in sorted(cpu["processes_ms_per_step"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<16} {ms:7.3f}")
    lines.append(f"  {'all of them':<16} {cpu['ms_per_step']:7.3f}")
    lines.append(
        f"  {'whole machine':<16} {cpu['machine_ms_per_step']:7.3f}  "
        f"(/proc/stat; busy {cpu['machine_utilisation']:.0%}; "
        f"{cpu['other_processes_s']} s of it by processes not listed above)"
    )
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    """Everything printed at the end: context, table, CPU breakdown."""
    m, v = results["machine"], results["versions"]
    parts = [
        f"Loopline benchmark, {results['started_at']} on {m['cores']} cores ({m['cpu_model']}), "
        f"{m['memory_gib']} GiB, kernel {m['kernel']}, load at start {m['load_average_at_start']}",
        f"commit {results['commit']}; Python {v['python']}, Kafka {v['kafka']}, aiokafka "
        f"{v.get('aiokafka')}, pydantic {v.get('pydantic')}, PostgreSQL {v.get('postgresql')}, "
        f"Redis {v.get('redis')}",
        f"durability: {durability_line(results['durability'])}",
        *(
            [f"on the cluster: {durability_line(results['cluster']['durability'])}"]
            if "cluster" in results
            else []
        ),
        *(
            [f"service settings changed for this run: {results['service_env']}"]
            if results.get("service_env")
            else []
        ),
        "",
        table(results),
        "",
        cpu_breakdown(results),
        *(
            ["", cpu_breakdown(results["cluster"], f" on {results['cluster']['brokers']} brokers")]
            if "cluster" in results
            else []
        ),
        *noise_warnings(results),
    ]
    return "\n".join(parts).rstrip() + "\n"


def save(results: dict[str, Any], folder: Path = RESULTS_DIR) -> Path:
    """Write the results as a new JSON file named by their start time; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{stamp}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    tmp.rename(path)
    return path
