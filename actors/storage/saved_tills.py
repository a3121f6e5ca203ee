"""Where a till keeps its open session and cart between changes, so that neither a till actor's
restart nor a process restart (kill -9 included) makes a cashier scan the basket again.

A row per till in the store's SQLite file, rewritten on every change. Its connection commits with
synchronous=NORMAL: in WAL mode a commit then survives the process dying at any point, and only a
power cut can take the last few changes with it. That is the right trade for a cart, which is not
yet a sale: a scan costs no fsync. Sales themselves are committed with synchronous=FULL by the
outbox. For the same reason a save waits only SAVE_LOCK_WAIT_S for a file another program holds
locked, then gives up with a warning: the till answers the cashier, and the next change saves the
whole state again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from actors.storage.db import LockWatch, connect, is_busy

log = logging.getLogger(__name__)

SAVE_LOCK_WAIT_S = 0.5  # a scan must not wait on a backup; the store's own writers take milliseconds


class SavedTills:
    """Saved till states, as the JSON-able dicts the till actor writes."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path, SAVE_LOCK_WAIT_S)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = LockWatch(path, "a till saving its open cart", "the till sells on, and saves its cart at "
                                                                   "its next change")

    def load(self, till: str) -> dict[str, Any] | None:
        """The till's last saved state; None if there is none, or if it cannot be read (logged: the
        till then starts empty rather than fail to start)."""
        row = self._db.execute("SELECT state FROM open_tills WHERE till = ?", (till,)).fetchone()
        if row is None:
            return None
        try:
            state = json.loads(row[0])
            if not isinstance(state, dict):
                raise ValueError(f"expected an object, found {type(state).__name__}")
            return state
        except ValueError as exc:
            log.error("till %s: its saved cart cannot be read (%s); starting with an empty one", till, exc)
            return None

    def save(self, till: str, state: dict[str, Any]) -> None:
        """Save the till's whole state; under another program's lock, skip it (logged once)."""
        try:
            self._db.execute("INSERT INTO open_tills (till, state, saved_at) VALUES (?, ?, ?) "
                             "ON CONFLICT (till) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
                             (till, json.dumps(state, separators=(",", ":")), time.time()))
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            self._lock.locked(exc)
            return
        self._lock.free()

    def close(self) -> None:
        self._db.close()
