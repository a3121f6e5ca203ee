"""Who is logged in at each till, and who is locked out: the store's PIN logins, kept in staff.sqlite3.

One actor per store (LoginActor, named LOGINS) owns the login tables, beside the staff list they depend on:
- `till_logins`: at most one login per till (a new login at a till replaces the one before it: switching
  cashier), holding only the SHA-256 of the random token the browser keeps in its cookie, so a copy of the
  file logs nobody in. It survives a restart (a kill -9 included): the cashier carries on without a new PIN.
- `pin_failures`: wrong PINs in a row per login, at any till of the store, and until when the login is locked
  out. Unknown logins count too, so a lockout never tells whether a login exists. A run of wrong PINs is
  forgotten `lockout_s` after its last one (and its row purged), so guessed logins cannot grow the table.

The PIN itself is checked by the HTTP handler in a worker thread (scrypt takes ~0.15 s): this actor's mailbox
only answers what to check against (`prepare`) and records the outcome (`failed`, `logged_in`). It reads the
staff list through its own connection, so a staff actor waiting on the hub never delays a login. It audits
logins made offline (till.offline_login) and lockouts (till.login_locked) through the outbox.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from actors.staff.cache import StaffCache, staff_path
from actors.storage.audit import record_at_store
from actors.storage.db import immediate
from edge_runtime import Actor
from novapos.config.login import LoginSettings
from novapos.passwords import dummy_verifier
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

LOGINS = "logins"
"""The login actor's name in the edge tree."""
SEEN_EVERY_S = 60.0
"""A login's last_seen is written at most this often (it is for the operator, not for any decision)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS till_logins (
    till TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, login TEXT NOT NULL, session TEXT NOT NULL,
    offline INTEGER NOT NULL, locked INTEGER NOT NULL DEFAULT 0, issued_at REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pin_failures (
    login TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_until REAL, last_at REAL NOT NULL);
"""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.0f} h" if seconds >= 3600 else f"{max(1, round(seconds / 60))} min"


class LoginActor(Actor):
    """The store's till logins. Answers are plain dicts (or a sentence, for a refusal)."""

    def __init__(self, state_dir: Path, settings: LoginSettings) -> None:
        super().__init__()
        self._path = staff_path(state_dir)
        self._settings = settings
        self._db: sqlite3.Connection | None = None
        self._staff: StaffCache | None = None

    def started(self) -> None:
        self._staff = StaffCache(self._path)
        self._db = sqlite3.connect(self._path, isolation_level=None, timeout=5.0)
        self._db.executescript(_SCHEMA)
        dummy_verifier()  # made once now (scrypt), not inside the first unknown login's answer

    def stopping(self) -> None:
        for connection in (self._db, self._staff):
            if connection is not None:
                connection.close()

    def _list_age(self) -> tuple[float | None, str | None]:
        """(seconds since the hub last confirmed the staff list, the refusal of every login or None)."""
        assert self._staff is not None
        version, age, _people = self._staff.status()
        if version is None or age is None:
            return None, ("this store has no staff list from the hub yet: logins need the hub once. "
                          "Check the store's network")
        if age > self._settings.offline_grace_s:
            return age, (f"this till has not reached the hub for {hours(age)}: logins need the hub again. "
                         "Check the store's network")
        return age, None

    def offline(self) -> bool:
        """Whether a login now counts as offline (the hub has not confirmed the staff list lately)."""
        age, _refusal = self._list_age()
        return age is None or age > self._settings.offline_after_s

    def prepare(self, login: str) -> dict[str, Any]:
        """What a login attempt checks the PIN against: the verifier (a dummy one for an unknown login, so
        timing does not tell who exists), and any reason to refuse before checking (`refusal`, `locked_until`)."""
        assert self._staff is not None
        _age, refusal = self._list_age()
        member = self._staff.lookup(login)
        return {"verifier": member.pin_verifier if member is not None else dummy_verifier(),
                "member": None if member is None else {"login": member.login, "name": member.name,
                                                       "roles": list(member.roles)},
                "refusal": refusal, "locked_until": self._locked_until(login)}

    def _locked_until(self, login: str) -> float | None:
        assert self._db is not None
        row = self._db.execute("SELECT locked_until FROM pin_failures WHERE login = ?", (login,)).fetchone()
        return row[0] if row is not None and row[0] is not None and row[0] > time.time() else None

    def failed(self, login: str, till: str) -> float | None:
        """A wrong PIN for `login` at `till`: counted; when it is the `lockout_after`th in a row the login is
        locked out (audited) and the answer is until when; None while it may still try."""
        assert self._db is not None and self._staff is not None
        now = time.time()
        with immediate(self._db):
            forgotten = now - self._settings.lockout_s
            self._db.execute("DELETE FROM pin_failures WHERE last_at < ? AND coalesce(locked_until, 0) < ?",
                             (forgotten, now))
            row = self._db.execute("SELECT failures, locked_until FROM pin_failures WHERE login = ?",
                                   (login,)).fetchone()
            failures = 1 if row is None or (row[1] is not None and row[1] <= now) else row[0] + 1
            until = now + self._settings.lockout_s if failures >= self._settings.lockout_after else None
            self._db.execute("INSERT OR REPLACE INTO pin_failures (login, failures, locked_until, last_at) "
                             "VALUES (?, ?, ?, ?)", (login, 0 if until is not None else failures, until, now))
        if until is None:
            log.info("login: a wrong PIN at till %s (%d in a row)", till, failures)
            return None
        known = self._staff.lookup(login) is not None
        log.warning("login: %s locked out for %d s after %d wrong PINs, the last at till %s",
                    login if known else "an unknown login", self._settings.lockout_s, failures, till)
        if known:
            record_at_store(self.registry, "till.login_locked", login, till,
                            details={"failures": failures, "lockout_s": self._settings.lockout_s},
                            key=f"login-locked:{login}:{int(until)}")
        return until

    def logged_in(self, login: str, till: str) -> dict[str, Any] | str:
        """The PIN was right: a new login at `till` (replacing the till's previous one), its failures forgotten.
        The answer holds the cookie's token (only its hash is kept) and the session; a sentence if refused."""
        assert self._db is not None and self._staff is not None
        member = self._staff.lookup(login)
        age, refusal = self._list_age()
        if member is None or refusal is not None:  # deactivated, or the window closed, while the PIN was checked
            return refusal or "this login is not on this store's staff list"
        offline = age is None or age > self._settings.offline_after_s
        token, session, now = secrets.token_urlsafe(32), str(uuid7()), time.time()
        with immediate(self._db):
            self._db.execute("DELETE FROM pin_failures WHERE login = ?", (login,))
            self._db.execute("INSERT OR REPLACE INTO till_logins (till, token_sha256, login, session, offline, locked, "
                             "issued_at, last_seen) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                             (till, token_hash(token), login, session, int(offline), now, now))
        log.info("login: %s logged in at till %s%s", login, till, " OFFLINE" if offline else "")
        if offline:
            record_at_store(self.registry, "till.offline_login", login, till, target=session,
                            details={"staff_age_s": None if age is None else int(age)}, key=f"offline-login:{session}")
        return {"token": token, **self._user(member.login, member.name, member.roles, session, offline, False)}

    @staticmethod
    def _user(login: str, name: str, roles: tuple[str, ...], session: str, offline: bool,
              locked: bool) -> dict[str, Any]:
        return {"login": login, "name": name, "roles": list(roles), "session": session, "offline": offline,
                "locked": locked}

    def who(self, token_sha256: str) -> dict[str, Any] | None:
        """The login holding this token ({till, login, name, roles (as the staff list says now), session,
        offline (now), locked}), or None. A login whose user left the staff list is ended here ({ended: login})."""
        assert self._db is not None and self._staff is not None
        row = self._db.execute("SELECT till, login, session, locked, last_seen FROM till_logins "
                               "WHERE token_sha256 = ?", (token_sha256,)).fetchone()
        if row is None:
            return None
        till, login, session, locked, last_seen = row
        member = self._staff.lookup(login)
        if member is None:
            self._db.execute("DELETE FROM till_logins WHERE till = ?", (till,))
            log.warning("login: %s is no longer on the staff list; their login at till %s ended", login, till)
            return {"till": till, "ended": login}
        now = time.time()
        if now - last_seen > SEEN_EVERY_S:
            self._db.execute("UPDATE till_logins SET last_seen = ? WHERE till = ?", (now, till))
        # offline: now (the page's banner), not when the login was made (the till's session keeps that)
        return {"till": till, **self._user(login, member.name, member.roles, session, self.offline(), bool(locked))}

    def log_out(self, till: str, token_sha256: str) -> bool:
        """End the login holding this token at `till`; False if it had ended already."""
        assert self._db is not None
        ended = self._db.execute("DELETE FROM till_logins WHERE till = ? AND token_sha256 = ?",
                                 (till, token_sha256)).rowcount
        if ended:
            log.info("login: logged out at till %s", till)
        return bool(ended)

    def lock(self, till: str, token_sha256: str, locked: bool) -> bool:
        """Lock the till's screen (the login stays; its user's PIN unlocks it), or unlock it."""
        assert self._db is not None
        changed = self._db.execute("UPDATE till_logins SET locked = ? WHERE till = ? AND token_sha256 = ?",
                                   (int(locked), till, token_sha256)).rowcount
        return bool(changed)
