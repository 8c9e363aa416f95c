"""One logging set-up for every Loopline process: one line per record, to stderr."""

from __future__ import annotations

import logging
import os
import sys

from loopline_runtime._secrets import RedactingFilter


def configure_logging(service: str, level: str | None = None) -> None:
    """Log `service` records at `level` (default: LOOPLINE_LOG_LEVEL or INFO) to stderr."""
    chosen = (level or os.environ.get("LOOPLINE_LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    )
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen)
    # aiokafka is chatty at INFO about every group join; its warnings still show.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
