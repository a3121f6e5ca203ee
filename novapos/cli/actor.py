"""Who a command-line action is recorded as in the audit chain: `cli:<os user>` (the person at the hub's shell)."""

from __future__ import annotations

import getpass


def cli_actor() -> str:
    """`cli:<os user>`; `cli:unknown` when the OS cannot name the user (no passwd entry, no LOGNAME)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
