"""`python -m loopline_events DIR`: write the JSON Schema of every event into DIR."""

from __future__ import annotations

import sys
from pathlib import Path

from loopline_events._schemas import IncompatibleSchemaError, write_schemas


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in {"-h", "--help"}:
        print("usage: python -m loopline_events SCHEMA_DIR", file=sys.stderr)
        return 2
    try:
        changed = write_schemas(Path(argv[0]))
    except IncompatibleSchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(changed)} schema file(s) written" + (f": {', '.join(changed)}" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
