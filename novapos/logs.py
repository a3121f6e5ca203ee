"""Structured logs: one line per event, human-readable by default, JSON for log shippers.

NOVAPOS_LOG_FORMAT=json switches to one JSON object per line (journald, Loki and jq read it):
{"ts", "level", "logger", "msg", "process"} and, where they apply, the context of the work the line is about:
tenant, store, till, request, sale, event, and trace_id / span_id while an OpenTelemetry span is current (so a
line links to its trace). In JSON mode nothing else reaches stderr: warnings, an uncaught exception (in any
thread) and an exception Python could not raise are logged as JSON lines too. NOVAPOS_LOG_LEVEL sets the level.

Context fields are bound where work comes in (the doors), not passed down: `bound(till=..., sale=...)` for the
duration of a block, in a context variable, so every line logged inside it, however deep, carries them.
`bind(...)` adds to the enclosing block from inside it (what a handler learns, such as the till a path names).
`detached(...)` starts afresh (work that must not inherit its trigger's ids, such as a forwarder woken by a
sale). `bind_process(...)` holds what is true for the whole process (an edge serves one tenant's one store).
An actor's handler runs in its sender's context variables (edge_runtime), so a till request's ids follow
it into the till actor. Ids only: never a name, a PIN, a card or anything a person typed.

A message's arguments often carry what a client sent (a cashier's name, a barcode). Both formats
escape the characters the validators refuse (control characters, line separators, lone surrogates,
invisible format characters such as bidi overrides) in the rendered message and in the context fields, so a
name holding a newline, a terminal escape or a right-to-left override can neither forge a second log line, nor
repaint an operator's terminal, nor reverse the rest of the line in a log viewer. Tracebacks keep
their own newlines: they come from the code, not from a client.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType, TracebackType
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace

from novapos.validators import UNSAFE_CHARACTERS

FIELDS = ("tenant", "store", "till", "request", "sale", "event")
"""The context fields a line may carry, in the order they are written."""
QUIET = ("hypercorn.error", "nats", "asyncio", "httpx", "httpcore")
"""Libraries logged at WARNING and above only: their INFO and DEBUG lines repeat ours, or quote URLs and HTTP
headers (which may hold a token or what a person searched for)."""
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
"""A request id a proxy in front of the server may send (X-Request-Id) and that is kept as it is."""

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("novapos_log_context", default=_EMPTY)
_process: Mapping[str, str] = _EMPTY


def escape(value: str) -> str:
    """`value` with every character the validators refuse written as an escape (\\n, \\u202e)."""
    return UNSAFE_CHARACTERS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), value)


def _checked(fields: Mapping[str, str | None]) -> None:
    if unknown := set(fields) - set(FIELDS):
        raise ValueError(f"unknown log context fields {sorted(unknown)}: only {', '.join(FIELDS)}")


def bind_process(**fields: str) -> None:
    """Fields of every line this process logs, in any thread (an edge's tenant and store)."""
    global _process
    _checked(fields)
    _process = MappingProxyType({**_process, **fields})


def _merged(fields: Mapping[str, str | None]) -> Mapping[str, str]:
    _checked(fields)
    merged = {**_context.get(), **fields}
    return MappingProxyType({name: value for name, value in merged.items() if value is not None})


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """The lines logged inside the block carry `fields` on top of those already bound (None unbinds one)."""
    token = _context.set(_merged(fields))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """`fields` for the rest of the enclosing `bound` block, from a function inside it (a request handler
    that learns the till or the tenant): the block's end unbinds them with its own."""
    _context.set(_merged(fields))


@contextmanager
def detached(**fields: str) -> Iterator[None]:
    """The lines logged inside the block carry `fields` and the process's, none bound outside it; nor the trace
    of the work that started it: an empty OpenTelemetry context is current inside (a span started there is a
    trace of its own, and the lines carry its ids, not the trigger's)."""
    _checked(fields)
    token = _context.set(MappingProxyType(dict(fields)))
    otel_token = otel_context.attach(otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(otel_token)
        _context.reset(token)


DATABASE_ERROR_NAMES = ("schema_name", "table_name", "column_name", "constraint_name", "data_type_name")
"""What a database's error names that a log line may show: where it happened, never the values."""


def database_error(exc: BaseException) -> BaseException | None:
    """The database's error (one carrying a SQLSTATE, as asyncpg's do) `exc` is or was caused by, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if getattr(current, "sqlstate", None):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def error_text(exc: BaseException) -> str:
    """How a log line names an exception: "Class: message", except a database's error, whose message and DETAIL
    may quote a row's values (a customer's phone number in "Key (phone)=(...) already exists"): its class, its
    SQLSTATE and the schema, table, column, constraint or type it names. The full text stays where an operator
    reads it in PostgreSQL (a dead letter's reason), not in the logs that are shipped around."""
    database = database_error(exc)
    if database is None:
        return f"{type(exc).__name__}: {exc}"
    named = [f"{name.removesuffix('_name')} {value}" for name in DATABASE_ERROR_NAMES
             if isinstance(value := getattr(database, name, None), str) and value]
    sqlstate = getattr(database, "sqlstate", "?")
    return f"{type(database).__name__} (SQLSTATE {sqlstate}{''.join(', ' + n for n in named)})"


def current() -> dict[str, str]:
    """The context fields a line logged here would carry, trace ids included."""
    fields = {**_process, **_context.get()}
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"], fields["span_id"] = f"{span.trace_id:032x}", f"{span.span_id:016x}"
    return fields


def address(url: str) -> str:
    """A server's URL (or a comma-separated list of them) as a log line may show it: scheme, host and port, never
    the user, password or token it may carry (nats://user:password@host:4222 is a valid NATS URL)."""
    shown = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        try:
            port = parts.port
        except ValueError:  # not a number: not worth showing
            port = None
        host = parts.hostname or "?"
        shown.append(f"{parts.scheme}://{f'[{host}]' if ':' in host else host}{'' if port is None else f':{port}'}")
    return ",".join(shown)


def request_id(sent: str | None = None) -> str:
    """The id of a request coming in: the one a proxy sent (X-Request-Id), if it is a plain token, or a new one."""
    return sent if sent is not None and REQUEST_ID.fullmatch(sent) else secrets.token_hex(8)


class ContextFilter(logging.Filter):
    """Stamps each record with the context of the thread and task that logged it (formatting may happen later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = current()
        return True


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    fields: dict[str, str] = getattr(record, "context", {})
    return {name: escape(value) for name, value in fields.items()}


def _escaped(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of `record` whose message is rendered and escaped (the original is left for other handlers)."""
    safe = copy.copy(record)
    safe.msg, safe.args = escape(record.getMessage()), None
    return safe


class PlainFormatter(logging.Formatter):
    """The format string's line, then the context fields a process does not share with all its lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(_escaped(record))
        fields = {name: value for name, value in _context_of(record).items() if _process.get(name) != value}
        if not fields:
            return line
        first, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{first} [{' '.join(f'{name}={value}' for name, value in fields.items())}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                 "level": record.levelname.lower(), "logger": record.name, "msg": _escaped(record).getMessage()}
        if self.process is not None:
            entry["process"] = self.process
        entry.update(_context_of(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("novapos.uncaught").critical("uncaught %s: the process ends", kind.__name__,
                                                   exc_info=(kind, value, tb))


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("novapos.uncaught").error("uncaught %s in thread %s: the thread ended", args.exc_type.__name__,
                                                escape(name), exc_info=args.exc_value)


def _log_unraisable(args: sys.UnraisableHookArgs) -> None:
    exc_info = None if args.exc_value is None else (args.exc_type, args.exc_value, args.exc_traceback)
    logging.getLogger("novapos.uncaught").warning("exception ignored (%s) in a %s", escape(args.err_msg or "?"),
                                                  type(args.object).__name__, exc_info=exc_info)


def setup(process: str, level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if os.environ.get("NOVAPOS_LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter(process))
        # nothing but JSON lines on stderr: what Python would print there goes through logging
        sys.excepthook, threading.excepthook, sys.unraisablehook = _log_uncaught, _log_thread_uncaught, _log_unraisable
        logging.captureWarnings(True)
    else:
        handler.setFormatter(PlainFormatter(f"%(asctime)s %(levelname)-7s {process} %(name)s: %(message)s"))
    logging.basicConfig(level=level or os.environ.get("NOVAPOS_LOG_LEVEL", "INFO"), handlers=[handler], force=True)
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
