"""The drawer sessions' journal (actors.storage.outbox.Journal): their tables kept in each event's transaction.

Every sale.completed, return.completed, drawer.* and till.void audit record is seen inside the transaction that
commits it, so the drawer tables (edge migration _version_4) can never disagree with the outbox, whatever
crashes. A sale or return belongs to the drawer session its body names (`drawer_session`, v3 on) or else to its
till's open session; one naming a closed or unknown session is refused, as is any drawer event for a session
that is not open: a closed session's Z report never changes. Bodies of other helpers' events are read by field
name, defensively: a field this journal does not know is ignored, never a refusal.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from actors.cash.report import next_z_number, session_row
from actors.storage.outbox import JournalRefused
from novapos.wire.envelope import Envelope

Row = tuple[str, str, str, int, int, int]
"""A ledger row: kind, method, scheme, rate_ppm, amount, cash (its signed effect on the drawer's cash)."""


def _minor(value: Any) -> int:
    """The minor units of a Money field, 0 when it is absent."""
    return int(value["minor"]) if isinstance(value, Mapping) and isinstance(value.get("minor"), int) else 0


def _tenders(tenders: Iterable[Mapping[str, Any]], kind: str, sign: int) -> list[Row]:
    rows = []
    for tender in tenders:
        method = str(tender.get("method", ""))
        card = tender.get("card")
        scheme = str(card.get("scheme", "")) if isinstance(card, Mapping) else ""
        amount = _minor(tender.get("amount"))
        rows.append((kind, method, scheme, 0, amount, sign * amount if method == "cash" else 0))
    return rows


def sale_rows(body: Mapping[str, Any]) -> list[Row]:
    """A sale's ledger rows: its total, tenders, change, tax per rate and discounts."""
    rows: list[Row] = [("sale", "", "", 0, _minor(body.get("total")), 0)]
    rows += _tenders(body.get("tenders", ()), "tender", 1)
    if change := _minor(body.get("change")):
        rows.append(("change", "cash", "", 0, change, -change))
    tax: dict[int, int] = {}
    discounts = _minor(body.get("order_discount", {}).get("amount") if isinstance(body.get("order_discount"), Mapping)
                       else None)
    for line in body.get("lines", ()):
        if isinstance(line.get("tax"), Mapping):
            rate = int(line["tax"].get("rate_ppm", 0))
            tax[rate] = tax.get(rate, 0) + _minor(line["tax"].get("amount"))
        if isinstance(line.get("discount"), Mapping):
            discounts += _minor(line["discount"].get("amount"))
    rows += [("tax", "", "", rate, amount, 0) for rate, amount in sorted(tax.items())]
    if discounts:
        rows.append(("discount", "", "", 0, discounts, 0))
    return rows


def return_rows(body: Mapping[str, Any]) -> list[Row]:
    """A return's rows: the value of the goods returned, the refunds (cash out of the drawer), money taken for
    an exchange's new lines, and change."""
    returned = sum(_minor(item.get("amount")) for item in body.get("returned", ()))
    rows: list[Row] = [("return", "", "", 0, returned, 0)]
    rows += _tenders(body.get("refunds", ()), "refund", -1)
    rows += _tenders(body.get("tenders", ()), "tender", 1)
    if change := _minor(body.get("change")):
        rows.append(("change", "cash", "", 0, change, -change))
    return rows


def _open_session(db: sqlite3.Connection, till: str) -> str | None:
    row = db.execute("SELECT id FROM drawer_sessions WHERE till = ? AND closed_at IS NULL", (till,)).fetchone()
    return None if row is None else str(row[0])


def _session_for(db: sqlite3.Connection, body: Mapping[str, Any]) -> str | None:
    """The session a sale or return belongs to; refused when it names one that is not open at its till."""
    named = body.get("drawer_session")
    if named is None:
        return _open_session(db, str(body.get("till")))
    row = db.execute("SELECT till, closed_at FROM drawer_sessions WHERE id = ?", (named,)).fetchone()
    if row is None or row[0] != body.get("till"):
        raise JournalRefused("conflict", f"drawer session {named} is not one of till {body.get('till')}'s")
    if row[1] is not None:
        raise JournalRefused("conflict", "the till's drawer session is closed: open a new one to take money")
    return str(named)


def _must_be_open(db: sqlite3.Connection, session: str, till: str) -> dict[str, Any]:
    row = session_row(db, session)
    if row is None or row["till"] != till:
        raise JournalRefused("not_found", f"till {till} has no drawer session {session}")
    if row["closed_at"] is not None:
        raise JournalRefused("conflict", f"drawer session {session} is closed: it takes no more drawer events")
    return row


def _add(db: sqlite3.Connection, session: str, seq: int, rows: list[Row]) -> None:
    """The rows, and the session's running counts: its cash, sales and returns (one row by primary key)."""
    db.executemany("INSERT INTO cash_ledger (session, seq, kind, method, scheme, rate_ppm, amount, cash) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(session, seq, *row) for row in rows])
    db.execute("UPDATE drawer_sessions SET cash_minor = cash_minor + ?, sales = sales + ?, returns = returns + ? "
               "WHERE id = ?", (sum(row[5] for row in rows), sum(row[0] == "sale" for row in rows),
                                sum(row[0] == "return" for row in rows), session))


MOVE_CASH = {"pay_in": 1, "pay_out": -1, "drop": -1, "no_sale": 0}


def _opened(db: sqlite3.Connection, envelope: Envelope) -> None:
    body = envelope.body
    if _open_session(db, body["till"]) is not None:
        raise JournalRefused("conflict", f"till {body['till']} already has an open drawer session: close it first")
    try:
        db.execute("INSERT INTO drawer_sessions (id, till, currency, opened_at, opened_by, float_minor, float_counts) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (body["session"], body["till"], body["currency"], envelope.ts, body["cashier"],
                    body["float"]["total"]["minor"], json.dumps(body["float"]["counts"], sort_keys=True)))
    except sqlite3.IntegrityError:
        raise JournalRefused("conflict", f"drawer session {body['session']} was already opened") from None


def _moved(db: sqlite3.Connection, envelope: Envelope) -> None:
    body = envelope.body
    _must_be_open(db, body["session"], body["till"])
    amount = body["amount"]["minor"]
    _add(db, body["session"], envelope.seq, [(body["kind"], "cash", "", 0, amount, MOVE_CASH[body["kind"]] * amount)])


def _closed(db: sqlite3.Connection, envelope: Envelope) -> None:
    """Close the session; refused if its cash, sales or returns moved since the figures were taken (count again):
    checked against the session's running counts, so the close reads its ledger once (in the till), not twice."""
    body = envelope.body
    session = _must_be_open(db, body["session"], body["till"])
    if (max(session["float_minor"] + session["cash_minor"], 0) != body["expected"]["minor"]
            or session["sales"] != body["z"]["sales"]["count"] or session["returns"] != body["z"]["returns"]["count"]):
        raise JournalRefused("conflict", "the drawer's takings changed while it was being closed: close it again")
    if body["z"]["number"] != next_z_number(db, body["till"]):
        raise JournalRefused("conflict", f"Z number {body['z']['number']} is not the till's next one")
    db.execute("UPDATE drawer_sessions SET closed_at = ?, closed_by = ?, counted_minor = ?, expected_minor = ?, "
               "difference_minor = ?, approver = ?, z_number = ? WHERE id = ?",
               (envelope.ts, body["cashier"], body["counted"]["total"]["minor"], body["expected"]["minor"],
                body["difference"], body.get("approver"), body["z"]["number"], body["session"]))


def cash_journal(db: sqlite3.Connection, envelope: Envelope) -> None:
    """The Journal: keep the drawer tables in step with one event, or refuse it (JournalRefused)."""
    kind, body = envelope.type, envelope.body
    if kind == "drawer.opened":
        _opened(db, envelope)
    elif kind == "drawer.moved":
        _moved(db, envelope)
    elif kind == "drawer.closed":
        _closed(db, envelope)
    elif kind in ("sale.completed", "return.completed"):
        if (session := _session_for(db, body)) is not None:
            _add(db, session, envelope.seq, sale_rows(body) if kind == "sale.completed" else return_rows(body))
    elif kind == "audit.recorded" and body.get("action") == "till.void":
        if (session := _open_session(db, str(body.get("till")))) is not None:
            _add(db, session, envelope.seq, [("void", "", "", 0, 0, 0)])
