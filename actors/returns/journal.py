"""The store's own sales journal: every sale this store made, its lines and what is still returnable of each,
kept by the outbox in the transaction of each event (actors.storage.outbox.Journal).

A sale.completed (any version) records its lines (line_no 1-based, as the hub numbers them) with all their
units returnable, and its tenders (method, amount, reference: a card's payment reference, a QR payment's tender id,
its key at the hub). A return.completed takes the returned units
off their lines in the same transaction, and is REFUSED (JournalRefused: nothing is committed, the till says
why) when a line has fewer units left than it returns, or when the refund is not the line's pro-rata share
(novapos.pricing.pro_rata). The outbox is one actor over one file, so two tills returning the same line at
once are served one after the other: the second finds the units gone. Offline or not, the journal is local.
An exchange's new lines are themselves a sale: they are recorded under the return's event id.

A return of another store's sale is not in this journal: the hub's answer said what was returnable, and the
hub flags a return beyond it (hub.returns).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from actors.storage.outbox import JournalRefused
from novapos.pricing import pro_rata
from novapos.wire.envelope import Envelope


def journal(db: sqlite3.Connection, event: Envelope) -> None:
    """The outbox's hook: keep the journal in step with a new event, or refuse it."""
    if event.type == "sale.completed":
        _record_sale(db, str(event.id), event.ts, event.body)
    elif event.type == "return.completed":
        _take_back(db, event.store, event.body)
        if event.body["lines"]:
            _record_sale(db, str(event.id), event.ts, event.body)


def _record_sale(db: sqlite3.Connection, order: str, ts: int, body: dict[str, Any]) -> None:
    db.execute("INSERT INTO store_sales (order_id, ts, till, currency, customer) VALUES (?, ?, ?, ?, ?)",
               (order, ts, body["till"], body["currency"], (body.get("customer") or {}).get("id")))
    db.executemany(
        "INSERT INTO store_sale_lines (order_id, line_no, sku, name, quantity, unit_minor, amount, tax_class, "
        "rate_ppm, included, returnable) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(order, number, line["sku"], line["name"], line["quantity"], line["unit_price"]["minor"],
          line["amount"]["minor"], *_tax_rule(line), line["quantity"])
         for number, line in enumerate(body["lines"], 1)])
    db.executemany(
        "INSERT INTO store_sale_tenders (order_id, tender_no, method, amount, reference, points) VALUES (?, ?, ?, ?, ?,"
        " ?)",
        [(order, number, tender["method"], tender["amount"]["minor"], _reference(tender),
          (tender.get("points") or {}).get("points"))
         for number, tender in enumerate(body["tenders"], 1)])


def _reference(tender: dict[str, Any]) -> str | None:
    """What a refund to this tender goes by: a card's payment reference; a QR payment's tender id (the hub's key); a
    points or gift card tender's redemption (a gift card's number is never kept whole outside the hub)."""
    if tender["method"] in ("points", "gift_card"):
        return str(tender[tender["method"]]["redemption"])
    return str(tender["id"]) if tender["method"] == "qr" else (tender.get("card") or {}).get("reference")


def _tax_rule(line: dict[str, Any]) -> tuple[Any, Any, Any]:
    tax = line.get("tax")
    return (None, None, None) if tax is None else (tax["class"], tax["rate_ppm"], int(tax["included"]))


def _take_back(db: sqlite3.Connection, store: str, body: dict[str, Any]) -> None:
    """Take the returned units off their original lines; refuse units not returnable or a wrong refund."""
    original = body.get("original")
    if original is None or original["store"] != store:
        return  # no receipt, or another store's sale: the hub keeps that count
    order = original["order"]
    for item in body["returned"]:
        number = item.get("original_line")
        if number is None:
            continue
        row = db.execute("SELECT sku, name, quantity, amount, returnable FROM store_sale_lines "
                         "WHERE order_id = ? AND line_no = ?", (order, number)).fetchone()
        if row is None:
            if db.execute("SELECT 1 FROM store_sales WHERE order_id = ?", (order,)).fetchone() is None:
                continue  # sold before this store kept its journal: the hub keeps that count
            raise JournalRefused("invalid", f"the sale has no line {number}")
        sku, name, quantity, amount, returnable = row
        if sku != item["sku"]:
            raise JournalRefused("invalid", f"line {number} of the sale is {sku}, not {item['sku']}")
        if item["quantity"] > returnable:
            raise JournalRefused("conflict", f"{name} (line {number}): only {returnable} of {quantity} may still be "
                                             f"returned, not {item['quantity']}: the rest was returned already")
        expected = pro_rata(amount, quantity, quantity - returnable, item["quantity"])
        if item["amount"]["minor"] != expected:
            raise JournalRefused("invalid", f"{name} (line {number}): the refund {item['amount']['minor']} is not its "
                                            f"share of the line ({expected})")
        db.execute("UPDATE store_sale_lines SET returnable = returnable - ? WHERE order_id = ? AND line_no = ?",
                   (item["quantity"], order, number))


def find_sale(db: sqlite3.Connection, order: str, store: str) -> dict[str, Any] | None:
    """A sale of this store as the till's return needs it (see actors.returns.sale), None when unknown here."""
    head = db.execute("SELECT ts, till, currency, customer FROM store_sales WHERE order_id = ?", (order,)).fetchone()
    if head is None:
        return None
    lines = db.execute("SELECT line_no, sku, name, quantity, unit_minor, amount, tax_class, rate_ppm, included, "
                       "returnable FROM store_sale_lines WHERE order_id = ? ORDER BY line_no", (order,)).fetchall()
    tenders = db.execute("SELECT method, amount, reference, points FROM store_sale_tenders WHERE order_id = ? "
                         "ORDER BY tender_no", (order,)).fetchall()
    return {"order": order, "store": store, "ts": head[0], "till": head[1], "currency": head[2],
            **({} if head[3] is None else {"customer": head[3]}),
            "lines": [{"line_no": n, "sku": sku, "name": name, "quantity": q, "unit_minor": unit, "amount": amount,
                       "tax_class": tax_class, "rate_ppm": rate, "included": None if included is None else
                       bool(included), "returnable": returnable}
                      for n, sku, name, q, unit, amount, tax_class, rate, included, returnable in lines],
            "tenders": [{"method": method, "amount": amount, "reference": reference,
                         **({} if points is None else {"points": points})}
                        for method, amount, reference, points in tenders]}
