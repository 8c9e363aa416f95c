"""`python -m loopline_testing.chaos` (`make chaos`): play the chaos scenarios, print the table.

Exit status 1 when a run was lost, a side effect ran twice or a failure gave no reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from loopline_infra import default_paths

from loopline_testing.chaos._report import render_table
from loopline_testing.chaos._suite import FULL, QUICK, QUICK_CLUSTER, run_suite, scaled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopline_testing.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the smaller set `make test` plays")
    parser.add_argument("--runs", type=int, help="concurrent runs per scenario (default 100)")
    parser.add_argument("--effects", type=int, help="side effects (steps) per run (default 4)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="play only these scenarios"
    )
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument(
        "--logs",
        type=Path,
        default=default_paths().home / "chaos-logs",
        help="where the services' logs of each scenario are kept (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    quick = (*QUICK, QUICK_CLUSTER)
    chosen = [s for s in (quick if args.quick else FULL) if not args.only or s.name in args.only]
    if not chosen:
        parser.error(f"no scenario named {args.only}; see {[s.name for s in FULL + quick]}")

    # The suite's own clients lose the broker on purpose; their reconnect errors are noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    def say(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    logs = args.logs / time.strftime("%Y%m%d-%H%M%S")
    reports = asyncio.run(run_suite(scaled(chosen, args.runs, args.effects), say, logs))
    if args.json:
        print(json.dumps([r.as_json() for r in reports], indent=2))
    else:
        print(render_table(reports))
        for report in reports:
            for note in report.notes[:10]:
                print(f"  {report.scenario}: {note}")
    say(f"the services' logs: {logs}")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
