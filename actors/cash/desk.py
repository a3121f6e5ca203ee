"""One till's drawer session as its till actor drives it: open with a float, move cash, no-sale, X, blind close.

Runs inside the till actor's mailbox, so nothing of this till (a sale, a return) commits between a close's
figures and its drawer.closed event; the journal checks that anyway (actors.cash.journal). Every event goes
through the outbox: it is on disk, with the drawer tables updated in the same transaction, before the cashier
is answered. The close is blind: the count is submitted before the expected amount is shown, and the answer
is the Z report. Beyond the store's tolerance a manager's approval is required (the caller's `approver`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack

from actors.cash.report import figures, next_z_number, session_row
from actors.devices.context import SPOOLER
from actors.printing.reports import X_KIND
from actors.protocol import Rejected
from actors.storage import audit
from actors.storage.db import connect, immediate, is_busy
from actors.storage.outbox import Committed
from edge_runtime import Registry
from novapos.config.cash import CashConfig
from novapos.money import Money
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

MOVES = ("pay_in", "pay_out", "drop")
COMMIT_TIMEOUT_S = 30.0


class DrawerDesk:
    """The drawer session of one till; reads through its own connection to the store's file."""

    def __init__(self, db_path: Path, till: str, currency: str, config: CashConfig) -> None:
        self._db: sqlite3.Connection = connect(db_path)
        self._till, self._currency, self._config = till, currency, config
        self._denominations = frozenset(config.for_currency(currency))
        self._current = self._load()

    def close_db(self) -> None:
        self._db.close()

    def _load(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT id FROM drawer_sessions WHERE till = ? AND closed_at IS NULL",
                               (self._till,)).fetchone()
        return None if row is None else session_row(self._db, row[0])

    @property
    def session_id(self) -> str | None:
        return None if self._current is None else str(self._current["id"])

    def state(self) -> dict[str, Any] | None:
        """The till state's drawer_session: {id, opened_at, opened_by} (never the expected cash: the close is blind)."""
        if self._current is None:
            return None
        return {"id": self._current["id"], "opened_at": self._current["opened_at"],
                "opened_by": self._current["opened_by"]}

    def may_sell(self, has_drawer: bool) -> Rejected | None:
        if has_drawer and self._config.require_session and self._current is None:
            return Rejected("conflict", f"till {self._till}'s drawer is not open: count the float and open it first")
        return None

    def count(self, counts: Mapping[int, int]) -> dict[str, Any] | Rejected:
        """A count by denomination as events carry it; an unknown denomination is refused."""
        unknown = sorted(set(counts) - self._denominations)
        if unknown:
            return Rejected("invalid", f"{', '.join(Money(d, self._currency).format() for d in unknown)} is not a note "
                                       f"or coin of {self._currency} here: count in "
                                       f"{', '.join(str(d) for d in sorted(self._denominations))} (minor units)")
        total = sum(denomination * pieces for denomination, pieces in counts.items())
        return {"counts": {str(d): n for d, n in sorted(counts.items()) if n}, "total": self._money(total)}

    def _money(self, minor: int) -> dict[str, Any]:
        return Money(minor, self._currency).to_wire()

    def _append(self, registry: Registry, event_type: str, body: dict[str, Any],
                printer: str | None = None) -> Committed | Rejected:
        committed: Committed | Rejected = registry.ask("outbox", "append", event_type, 1, body, print_on=printer,
                                                       timeout=COMMIT_TIMEOUT_S)
        if isinstance(committed, Committed):
            registry.tell("forwarder", "kick")
        return committed

    def open(self, registry: Registry, cashier: str, counts: Mapping[int, int]) -> Committed | Rejected:
        if self._current is not None:
            return Rejected("conflict", f"till {self._till} already has an open drawer session: close it first")
        counted = self.count(counts)
        if isinstance(counted, Rejected):
            return counted
        body = {"session": str(uuid7()), "till": self._till, "currency": self._currency, "cashier": cashier,
                "float": counted}
        committed = self._append(registry, "drawer.opened", body)
        if isinstance(committed, Committed):
            self._current = self._load()
            log.info("till %s: drawer session %s opened by %s with a float of %s", self._till, body["session"],
                     cashier, Money(counted["total"]["minor"], self._currency).format())
        return committed

    def _open_session(self) -> dict[str, Any] | Rejected:
        if self._current is None:
            return Rejected("conflict", f"till {self._till}'s drawer is not open: open it with a float first")
        return self._current

    def move(self, registry: Registry, kind: str, amount: int, reason: str | None, actor: str,
             approver: str | None) -> Committed | Rejected:
        """A pay-in, pay-out or drop (with a reason), or a no-sale (amount 0); audited as drawer.<kind>."""
        session = self._open_session()
        if isinstance(session, Rejected):
            return session
        if kind in ("pay_out", "drop"):
            counts = session_row(self._db, session["id"])
            assert counts is not None
            held = counts["float_minor"] + counts["cash_minor"]
            if amount > held:
                return Rejected("conflict", f"the drawer should hold only {Money(held, self._currency).format()}: "
                                            f"it cannot pay out {Money(amount, self._currency).format()}")
        body: dict[str, Any] = {"session": session["id"], "till": self._till, "currency": self._currency,
                                "kind": kind, "amount": self._money(amount), "actor": actor}
        for name, value in (("reason", reason), ("approver", approver)):
            if value is not None:
                body[name] = value
        committed = self._append(registry, "drawer.moved", body)
        if isinstance(committed, Committed):
            audit.record_at_store(registry, f"drawer.{kind}", actor, self._till, approver=approver,
                                  target=str(committed.id), reason=reason,
                                  details={"session": session["id"], "amount_minor": amount})
            log.info("till %s: drawer %s of %s by %s%s", self._till, kind, Money(amount, self._currency).format(),
                     actor, f" approved by {approver}" if approver else "")
        return committed

    def report(self) -> dict[str, Any] | Rejected:
        """The X report: the open session's figures and the cash expected now (nothing resets)."""
        session = self._open_session()
        if isinstance(session, Rejected):
            return session
        x = figures(self._db, session)
        x.pop("expected_minor")
        return {"kind": "x", "session": session["id"], "till": self._till, "at": int(time.time() * 1000), **x}

    def print_report(self, printer: str | None) -> dict[str, Any] | Rejected:
        """Queue the X report on the till's printer (a print job, not an event: it commits nothing)."""
        if printer is None:
            return Rejected("conflict", f"till {self._till} has no printer")
        x = self.report()
        if isinstance(x, Rejected):
            return x
        job = str(uuid7())
        try:
            with immediate(self._db):
                (seq,) = self._db.execute("SELECT last_seq FROM store_sequence").fetchone()
                self._db.execute("INSERT INTO print_jobs (id, printer, kind, payload, seq, queued_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", (job, printer, X_KIND, msgpack.packb(
                                     {"id": job, "seq": seq, "body": x}), seq, time.time()))
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return Rejected("busy", "the store's disk is busy (its database is locked by another program): "
                                    "print the X report again in a moment")
        return {**x, "print_job": job}

    def close(self, registry: Registry, cashier: str, counts: Mapping[int, int], approver: str | None,
              printer: str | None) -> dict[str, Any] | Rejected:
        """The blind close: counted against expected; beyond tolerance only with a manager's approval. The
        answer is the Z report (the drawer.closed body, its event id and seq)."""
        session = self._open_session()
        if isinstance(session, Rejected):
            return session
        counted = self.count(counts)
        if isinstance(counted, Rejected):
            return counted
        z = figures(self._db, session)
        expected = z.pop("expected_minor")
        expected_money = z.pop("expected")
        difference = counted["total"]["minor"] - expected
        if abs(difference) > self._config.tolerance_minor and approver is None:
            # the count is kept by the page for the retry; the expected amount stays hidden (the close is blind)
            return Rejected("conflict", f"the count is {'over' if difference > 0 else 'short'} by more than the "
                                         f"store's tolerance of {Money(self._config.tolerance_minor, self._currency).format()}: "
                                         "a manager must approve this close")
        body: dict[str, Any] = {"session": session["id"], "till": self._till, "currency": self._currency,
                                "cashier": cashier, "counted": counted, "expected": expected_money,
                                "difference": difference, "z": {"number": next_z_number(self._db, self._till), **z}}
        if approver is not None and abs(difference) > self._config.tolerance_minor:
            body["approver"] = approver
        committed = self._append(registry, "drawer.closed", body, printer)
        if isinstance(committed, Rejected):
            return committed
        if printer is not None:
            registry.tell(SPOOLER, "printer_ready", printer)
        if "approver" in body:
            audit.record_at_store(registry, "drawer.close_over_tolerance", cashier, self._till, approver=approver,
                                  target=session["id"], details={"difference_minor": difference})
        self._current = None
        log.info("till %s: drawer session %s closed by %s (Z %d): expected %s, counted %s", self._till,
                 session["id"], cashier, body["z"]["number"], Money(expected, self._currency).format(),
                 Money(counted["total"]["minor"], self._currency).format())
        return {"event": str(committed.id), "seq": committed.seq, **body}
