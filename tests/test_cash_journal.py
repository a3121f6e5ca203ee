"""The cash journal and the Z figures on a real SQLite file: cash, card and split sales (v3 bodies, with the
drawer session they name), a return with cash and card refunds, moves and voids reconcile; refusals write
nothing; the real outbox refuses a drawer event for a closed session."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from actors.cash.journal import cash_journal
from actors.cash.report import figures, session_row
from actors.protocol import Rejected
from actors.storage import db as local_db
from actors.storage.outbox import Committed, JournalRefused, Outbox
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from tests.drawer_events import SESSION, eur, moved, opened

_seq = iter(range(1, 1_000_000))


def apply(db: sqlite3.Connection, event_type: str, body: dict[str, Any]) -> None:
    envelope = Envelope(id=uuid7(), type=event_type, v=1, tenant="demo", store="store-001", seq=next(_seq),
                        ts=1_767_000_000_000, body=body)
    with local_db.immediate(db):
        cash_journal(db, envelope)


def sale(tenders: list[dict[str, Any]], total: int, change: int = 0, session: str | None = SESSION,
         discount: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"till": "till-1", "currency": "EUR", "total": eur(total), "tenders": tenders,
                            "change": eur(change),
                            "lines": [{"amount": eur(total), "tax": {"rate_ppm": 200_000, "amount": eur(total // 6)},
                                       **({"discount": {"amount": eur(discount)}} if discount else {})}]}
    if session is not None:
        body["drawer_session"] = session
    return body


def card(amount: int, scheme: str) -> dict[str, Any]:
    return {"method": "card", "amount": eur(amount), "card": {"scheme": scheme, "masked": "**** 4242"}}


def cash(amount: int) -> dict[str, Any]:
    return {"method": "cash", "amount": eur(amount)}


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    return local_db.connect(tmp_path / local_db.FILE_NAME)


def test_cash_card_and_split_sales_returns_and_moves_reconcile(db: sqlite3.Connection) -> None:
    apply(db, "drawer.opened", opened())                       # float 101.00
    apply(db, "sale.completed", sale([cash(2000)], 1250, change=750))
    apply(db, "sale.completed", sale([card(3000, "visa")], 3000, discount=300))
    apply(db, "sale.completed", sale([cash(1000), card(1599, "mastercard")], 2599))  # split
    apply(db, "sale.completed", sale([card(500, "visa")], 500, session=None))  # v2: its till's open session
    apply(db, "return.completed", {"till": "till-1", "drawer_session": SESSION, "returned": [{"amount": eur(1250)},
                                   {"amount": eur(500)}], "refunds": [cash(1250), card(500, "visa")], "tenders": [],
                                   "change": eur(0)})
    apply(db, "drawer.moved", moved("pay_in", 5000))
    apply(db, "drawer.moved", moved("pay_out", 1250))
    apply(db, "drawer.moved", moved("drop", 4000))
    apply(db, "drawer.moved", moved("no_sale", 0))
    apply(db, "audit.recorded", {"action": "till.void", "actor": "alice", "till": "till-1", "details": {}})
    apply(db, "audit.recorded", {"action": "till.void", "actor": "bob", "till": "till-2", "details": {}})  # no session

    session = session_row(db, SESSION)
    assert session is not None
    z = figures(db, session)
    assert z["sales"] == {"count": 4, "total": eur(1250 + 3000 + 2599 + 500)}
    assert z["tenders"] == [
        {"method": "card", "scheme": "mastercard", "count": 1, "amount": eur(1599)},
        {"method": "card", "scheme": "visa", "count": 2, "amount": eur(3500)},
        {"method": "cash", "count": 2, "amount": eur(3000)}]
    assert z["refunds"] == [{"method": "card", "scheme": "visa", "count": 1, "amount": eur(500)},
                            {"method": "cash", "count": 1, "amount": eur(1250)}]
    assert z["returns"] == {"count": 1, "total": eur(1750)}
    assert (z["change"], z["discounts"], z["voids"], z["no_sales"]) == (eur(750), eur(300), 1, 1)
    tendered = sum(entry["amount"]["minor"] for entry in z["tenders"])
    assert tendered - z["change"]["minor"] == z["sales"]["total"]["minor"]  # every sale fully paid
    expected = 10100 + 3000 - 750 + 5000 - 1250 - 4000 - 1250
    assert z["expected"] == eur(expected) and z["expected_minor"] == expected
    counts = session_row(db, SESSION)  # the running counts the close is checked against agree with the ledger
    assert counts is not None and (counts["float_minor"] + counts["cash_minor"], counts["sales"], counts["returns"]) == (
        expected, 4, 1)
    assert z["tax"] == [{"rate_ppm": 200_000, "amount": eur(1250 // 6 + 3000 // 6 + 2599 // 6 + 500 // 6)}]
    # One indexed aggregate: the plan reads the covering index, never the table, and sorts nothing.
    plan = " ".join(row[3] for row in db.execute(
        "EXPLAIN QUERY PLAN SELECT kind, method, scheme, rate_ppm, count(*), sum(amount), sum(cash) FROM cash_ledger "
        "WHERE session = ? GROUP BY kind, method, scheme, rate_ppm", (SESSION,)))
    assert "COVERING INDEX cash_ledger_report" in plan and "TEMP B-TREE" not in plan, plan


def _rows(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM cash_ledger").fetchone()[0])


def test_refusals_write_nothing(db: sqlite3.Connection) -> None:
    apply(db, "drawer.opened", opened())
    with pytest.raises(JournalRefused, match="already has an open"):
        apply(db, "drawer.opened", opened(session=str(uuid7())))
    with pytest.raises(JournalRefused, match="not one of till"):
        apply(db, "sale.completed", sale([cash(100)], 100, session=str(uuid7())))
    with pytest.raises(JournalRefused, match="has no drawer session"):
        apply(db, "drawer.moved", moved("pay_in", 100, session=str(uuid7())))
    assert _rows(db) == 0


def test_the_outbox_refuses_drawer_events_for_a_closed_session(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / local_db.FILE_NAME, "demo", "store-001", (cash_journal,))
    assert isinstance(outbox.append("drawer.opened", 1, opened()), Committed)
    assert isinstance(outbox.append("drawer.moved", 1, moved("pay_in", 1000)), Committed)
    db = local_db.connect(tmp_path / local_db.FILE_NAME)
    session = session_row(db, SESSION)
    assert session is not None
    z = figures(db, session)
    expected = z.pop("expected")
    z.pop("expected_minor")
    closing = {"session": SESSION, "till": "till-1", "currency": "EUR", "cashier": "alice",
               "counted": {"counts": {"2000": 5, "50": 2, "1000": 1}, "total": eur(11100)}, "expected": expected,
               "difference": 0, "z": {"number": 2, **z}}
    wrong_number = outbox.append("drawer.closed", 1, closing)
    assert isinstance(wrong_number, Rejected) and "Z number" in wrong_number.message
    stale = outbox.append("drawer.closed", 1, {**closing, "expected": eur(1), "z": {**closing["z"], "number": 1}})
    assert isinstance(stale, Rejected) and "changed while" in stale.message
    assert isinstance(outbox.append("drawer.closed", 1, {**closing, "z": {**closing["z"], "number": 1}}), Committed)
    depth = outbox.depth()
    late = outbox.append("drawer.moved", 1, moved("drop", 100))
    assert isinstance(late, Rejected) and late.reason == "conflict" and "closed" in late.message
    again = outbox.append("drawer.closed", 1, {**closing, "z": {**closing["z"], "number": 2}})
    assert isinstance(again, Rejected)
    assert outbox.depth() == depth  # refused events are not in the outbox either
    assert db.execute("SELECT z_number, counted_minor, difference_minor FROM drawer_sessions").fetchall() == [(1, 11100, 0)]
    outbox.close()
    db.close()
