"""Structured logs: one line per event, human-readable by default, JSON for log shippers.

NOVAPOS_LOG_FORMAT=json switches to one JSON object per line (journald and Loki read either).

A message's arguments often carry what a client sent (a cashier's name, a barcode). Both formats
escape the characters the validators refuse (control characters, line separators, lone surrogates,
invisible format characters such as bidi overrides) in the rendered message, so a name holding a
newline, a terminal escape or a right-to-left override can neither forge a second log line, nor
repaint an operator's terminal, nor reverse the rest of the line in a log viewer. Tracebacks keep
their own newlines: they come from the code, not from a client.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time

from novapos.validators import UNSAFE_CHARACTERS


def escape(value: str) -> str:
    """`value` with every character the validators refuse written as an escape (\\n, \\u202e)."""
    return UNSAFE_CHARACTERS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), value)


def _escaped(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of `record` whose message is rendered and escaped (the original is left for other handlers)."""
    safe = copy.copy(record)
    safe.msg, safe.args = escape(record.getMessage()), None
    return safe


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return super().format(_escaped(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "logger": record.name, "msg": _escaped(record).getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup(process: str, level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("NOVAPOS_LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter(f"%(asctime)s %(levelname)-7s {process} %(name)s: %(message)s"))
    logging.basicConfig(level=level or os.environ.get("NOVAPOS_LOG_LEVEL", "INFO"), handlers=[handler], force=True)
    for noisy in ("hypercorn.error", "nats", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
