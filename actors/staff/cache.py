"""The store's staff list in its state folder (staff.sqlite3): the till login's lookup, online or offline.

A list replaces the stored one whole, in one transaction, and only when its version is newer: a list that
arrives late (a reply overtaken by a publish) never undoes a newer one, and a till never sees half a list.
The file survives restarts, so a store that starts while the hub is away still knows its people. Readers
(the tills) open their own connection (WAL: they never wait for the writer).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from actors.storage.db import immediate
from novapos.wire.staff import StaffList, StaffMember

FILE_NAME = "staff.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1), tenant TEXT NOT NULL, store TEXT NOT NULL, version INTEGER NOT NULL,
    confirmed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS staff (
    login TEXT PRIMARY KEY, name TEXT NOT NULL, roles TEXT NOT NULL, pin_verifier TEXT NOT NULL);
"""


def staff_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


class StaffCache:
    """One connection to the store's staff file; a writer (the staff actor) or a reader (a till)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def version(self) -> int | None:
        """The version of the list kept, None before the first one arrived."""
        row = self._db.execute("SELECT version FROM meta").fetchone()
        return None if row is None else int(row[0])

    def status(self) -> tuple[int | None, float | None, int]:
        """(version, seconds since the hub last confirmed it, people in it)."""
        row = self._db.execute("SELECT version, confirmed_at FROM meta").fetchone()
        people = self._db.execute("SELECT count(*) FROM staff").fetchone()[0]
        if row is None:
            return None, None, people
        return int(row[0]), max(0.0, time.time() - row[1]), people

    def replace(self, staff: StaffList) -> bool:
        """Keep `staff` if it is newer than the list kept (True); an equal version only confirms it is current."""
        with immediate(self._db):
            kept = self.version()
            if kept is not None and staff.version <= kept:
                if staff.version == kept:
                    self._db.execute("UPDATE meta SET confirmed_at = ?", (time.time(),))
                return False
            self._db.execute("DELETE FROM staff")
            self._db.executemany("INSERT INTO staff (login, name, roles, pin_verifier) VALUES (?, ?, ?, ?)",
                                 [(u.login, u.name, json.dumps(list(u.roles)), u.pin_verifier) for u in staff.users])
            self._db.execute("INSERT OR REPLACE INTO meta (id, tenant, store, version, confirmed_at) "
                             "VALUES (1, ?, ?, ?, ?)", (staff.tenant, staff.store, staff.version, time.time()))
        return True

    def lookup(self, login: str) -> StaffMember | None:
        """The person who may log in at this store's tills as `login` (lower case), with their roles here."""
        row = self._db.execute("SELECT login, name, roles, pin_verifier FROM staff WHERE login = ?",
                               (login.lower(),)).fetchone()
        return None if row is None else StaffMember(row[0], row[1], tuple(json.loads(row[2])), row[3])

