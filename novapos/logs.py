"""Structured logs: one line per event, human-readable by default, JSON for log shippers.

NOVAPOS_LOG_FORMAT=json switches to one JSON object per line (journald and Loki read either).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup(process: str, level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("NOVAPOS_LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s {process} %(name)s: %(message)s"))
    logging.basicConfig(level=level or os.environ.get("NOVAPOS_LOG_LEVEL", "INFO"), handlers=[handler], force=True)
    for noisy in ("hypercorn.error", "nats", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
