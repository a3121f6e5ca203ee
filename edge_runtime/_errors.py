"""Exceptions of the kernel, and how a crash is marked on the exception that caused it.

A crash is marked with a note (PEP 678) so that tracebacks say which actor died, and so
that `Registry.ask` can tell an `ActorDeadError` that a handler let escape (the message
*was* handled: retrying would run it twice) from one pykka returns for a message that
never reached a handler (safe to deliver to the restarted instance).
"""

from __future__ import annotations

_CRASH_NOTE = "edge_runtime: this exception crashed actor "


class TreeFailed(Exception):
    """The root supervisor exceeded its restart intensity: the tree has given up.

    Raised out of `async with supervision_tree(...)`, so that the process exits non-zero
    and its own supervisor (systemd) restarts it from scratch.
    """


class RestartIntensityExceeded(Exception):
    """A supervisor saw more restarts than its intensity allows within its period.

    It is the exit reason of a supervisor that escalates: its parent treats it as a crash.
    """


class StartTimedOut(TimeoutError):
    """A child did not finish starting within its spec's `start_timeout`.

    It is the reason of that failed start: restart type, backoff and intensity apply as to any
    crash, and the blocked instance is abandoned (stopped if its `started()` ever returns).
    """


class ChildRefused(ValueError):
    """`Supervisor.start_child` refused a spec: not a spec, or one of its names is already in use.

    Raised back to the caller only: a refused request does not crash the supervisor.
    """


def mark_crash(exc: BaseException, actor: str) -> None:
    """Note on `exc` that it crashed `actor` (and so was raised *by* a handler)."""
    exc.add_note(f"{_CRASH_NOTE}{actor}; its supervisor decides whether to restart it")


def is_crash(exc: BaseException) -> bool:
    """Whether `exc` was raised by an actor's handler (see `mark_crash`)."""
    return any(note.startswith(_CRASH_NOTE) for note in getattr(exc, "__notes__", ()))
