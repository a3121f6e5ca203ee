"""The X and Z figures of a drawer session: one indexed aggregate over its cash ledger (actors.cash.journal).

The ledger holds a row per cash-affecting fact of the session (a sale's total, each tender, the change, its
tax per rate and discounts; a return's value and refunds; pay-ins, pay-outs, drops, no-sales, voids), each with
its signed effect on the drawer's cash, so the report is one GROUP BY on the covering index
cash_ledger_report, whatever the number of sales: no sale is read again at close (peers re-read every order and
take minutes past a thousand).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from novapos.money import Money

AGGREGATE = ("SELECT kind, method, scheme, rate_ppm, count(*), sum(amount), sum(cash) FROM cash_ledger "
             "WHERE session = ? GROUP BY kind, method, scheme, rate_ppm")


def _money(minor: int, currency: str) -> dict[str, Any]:
    return Money(minor, currency).to_wire()


def session_row(db: sqlite3.Connection, session: str) -> dict[str, Any] | None:
    row = db.execute("SELECT id, till, currency, opened_at, opened_by, float_minor, closed_at, closed_by, "
                     "counted_minor, expected_minor, difference_minor, approver, z_number, cash_minor, sales, returns "
                     "FROM drawer_sessions WHERE id = ?", (session,)).fetchone()
    if row is None:
        return None
    keys = ("id", "till", "currency", "opened_at", "opened_by", "float_minor", "closed_at", "closed_by",
            "counted_minor", "expected_minor", "difference_minor", "approver", "z_number", "cash_minor", "sales",
            "returns")
    return dict(zip(keys, row, strict=True))


def figures(db: sqlite3.Connection, session: dict[str, Any]) -> dict[str, Any]:
    """The session's report figures (the Z's `z` block without its number), and `expected` cash, in its
    currency: float + cash taken - change + pay-ins - pay-outs - drops - cash refunds."""
    currency = session["currency"]
    tallies: dict[str, list[int]] = {kind: [0, 0] for kind in ("sale", "return", "pay_in", "pay_out", "drop")}
    counts = {"no_sale": 0, "void": 0}
    tenders: dict[tuple[str, str], list[int]] = {}
    refunds: dict[tuple[str, str], list[int]] = {}
    tax: dict[int, int] = {}
    change = discounts = cash = 0
    for kind, method, scheme, rate, count, amount, moved in db.execute(AGGREGATE, (session["id"],)):
        cash += moved
        if kind in tallies:
            tallies[kind][0] += count
            tallies[kind][1] += amount
        elif kind in counts:
            counts[kind] += count
        elif kind in ("tender", "refund"):
            into = (tenders if kind == "tender" else refunds).setdefault((method, scheme), [0, 0])
            into[0] += count
            into[1] += amount
        elif kind == "change":
            change += amount
        elif kind == "discount":
            discounts += amount
        elif kind == "tax":
            tax[rate] = tax.get(rate, 0) + amount

    def tally(kind: str) -> dict[str, Any]:
        return {"count": tallies[kind][0], "total": _money(tallies[kind][1], currency)}

    def by_method(table: dict[tuple[str, str], list[int]]) -> list[dict[str, Any]]:
        return [{"method": method, **({"scheme": scheme} if scheme else {}), "count": count,
                 "amount": _money(amount, currency)} for (method, scheme), (count, amount) in sorted(table.items())]

    expected = session["float_minor"] + cash
    return {"opened_at": session["opened_at"], "opened_by": session["opened_by"],
            "float": _money(session["float_minor"], currency),
            "sales": tally("sale"), "returns": tally("return"), "tenders": by_method(tenders),
            "refunds": by_method(refunds), "change": _money(change, currency),
            "discounts": _money(discounts, currency), "voids": counts["void"], "no_sales": counts["no_sale"],
            "pay_ins": tally("pay_in"), "pay_outs": tally("pay_out"), "drops": tally("drop"),
            "tax": [{"rate_ppm": rate, "amount": _money(amount, currency)} for rate, amount in sorted(tax.items())],
            "expected": _money(max(expected, 0), currency), "expected_minor": expected}


def next_z_number(db: sqlite3.Connection, till: str) -> int:
    (last,) = db.execute("SELECT max(z_number) FROM drawer_sessions WHERE till = ?", (till,)).fetchone()
    return int(last or 0) + 1
