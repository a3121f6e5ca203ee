"""The drawer's X report (mid-shift, nothing resets) and Z report (the close) laid out for the receipt printer.

Print-spool renderers like the receipt's: "drawer.closed" is a Z report (the event's body, its `z` figures
from actors.cash), "drawer.x_report" an X report the till queued as a print job (the figures so far and the
cash expected now). Both head with the store (actors.printing.receipt.store_head), name people by their
full names when the staff list knows them, date in the store's time zone, and print the count by
denomination at a close so the paper alone reconciles the drawer. Fields are read by name, defensively: a
report prints what its body holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from actors.printing.document import PrintDocument, PrintLine
from actors.printing.receipt import RULE, TIME_FORMAT, ReceiptContext, money, percent, row, store_head
from novapos.money import Money

X_KIND = "drawer.x_report"
"""The print job kind of an X report (queued by the till's drawer, not an event)."""


def _at_ms(ms: int, like: datetime) -> str:
    """Milliseconds since the epoch as the store's wall-clock time (the zone of `like`)."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(like.tzinfo).strftime(TIME_FORMAT)


def _figures(figures: Mapping[str, Any], currency: str) -> list[PrintLine]:
    """The session's figures: float, sales, returns, tenders and refunds by method (card by scheme), change,
    discounts, voids, no-sales, cash moves and tax per rate."""
    def tally(title: str, key: str) -> list[PrintLine]:
        if key not in figures:
            return []
        return [PrintLine(row(f"{title} ({figures[key]['count']})", money(figures[key]["total"])))]

    lines = [PrintLine(row("Float", money(figures["float"])))] if "float" in figures else []
    lines += tally("Sales", "sales") + tally("Returns", "returns")
    for title, key in (("Tenders", "tenders"), ("Refunds", "refunds")):
        if figures.get(key):
            lines.append(PrintLine(title, bold=True))
        for entry in figures.get(key, []):
            method = "QR" if entry["method"] == "qr" else entry["method"].capitalize()
            name = method + (f" {entry['scheme']}" if entry.get("scheme") else "")
            lines.append(PrintLine(row(f"  {name} ({entry['count']})", money(entry["amount"]))))
    for title, key in (("Change given", "change"), ("Discounts", "discounts")):
        if key in figures:
            lines.append(PrintLine(row(title, money(figures[key]))))
    for title, key in (("Voids", "voids"), ("No-sales", "no_sales")):
        if key in figures:
            lines.append(PrintLine(row(title, str(figures[key]))))
    lines += tally("Pay-ins", "pay_ins") + tally("Pay-outs", "pay_outs") + tally("Drops", "drops")
    if figures.get("tax"):
        lines.append(PrintLine("Tax", bold=True))
    for tax in figures.get("tax", []):
        lines.append(PrintLine(row(f"  {percent(tax['rate_ppm'])}", money(tax["amount"]))))
    return lines


def _opened(context: ReceiptContext, figures: Mapping[str, Any], at: datetime) -> list[PrintLine]:
    lines = []
    if "opened_at" in figures and "opened_by" in figures:
        lines.append(PrintLine(f"Opened {_at_ms(figures['opened_at'], at)} by {context.person(figures['opened_by'])}"))
    return lines


def render_x(context: ReceiptContext, job: dict[str, Any], at: datetime) -> PrintDocument:
    """An X report: the open session's figures and the cash expected now (no count, no reset)."""
    x = job["body"]
    currency = x["float"]["currency"]
    lines = [*store_head(context, at), PrintLine(f"X REPORT  Till {x['till']}", align="center", bold=True, double=True),
             PrintLine("Mid-shift: nothing is reset", align="center"), *_opened(context, x, at), PrintLine(RULE),
             *_figures(x, currency), PrintLine(RULE)]
    if "expected" in x:  # left out for a cashier who will count the drawer blind
        lines.append(PrintLine(row("Expected in drawer", money(x["expected"])), bold=True))
    if "session" in x:
        lines += [PrintLine("Session", align="center"), PrintLine(x["session"], align="center")]
    return PrintDocument(tuple(lines))


def render_z(context: ReceiptContext, job: dict[str, Any], at: datetime) -> PrintDocument:
    """A Z report: the closed session's figures, the count by denomination against the expected cash,
    over or short, who opened, closed and approved."""
    closed = job["body"]
    z = closed["z"]
    currency = closed["currency"]
    difference = Money(closed["difference"], currency)
    verdict = "Over" if difference.minor > 0 else "Short" if difference.minor < 0 else "Balanced"
    lines = [*store_head(context, at),
             PrintLine(f"Z REPORT #{z['number']}  Till {closed['till']}", align="center", bold=True, double=True),
             *_opened(context, z, at),
             PrintLine(f"Closed {at.strftime(TIME_FORMAT)} by {context.person(closed['cashier'])}"),
             PrintLine(RULE), *_figures(z, currency), PrintLine(RULE), PrintLine("Counted", bold=True)]
    counts = closed["counted"]["counts"]
    for denomination in sorted(counts, key=int, reverse=True):
        pieces = counts[denomination]
        if pieces:
            value = Money(int(denomination), currency)
            lines.append(PrintLine(row(f"  {pieces} x {value.format()}", value.times(pieces).format())))
    lines += [PrintLine(row("Counted", money(closed["counted"]["total"]))),
              PrintLine(row("Expected", money(closed["expected"]))),
              PrintLine(row(verdict, difference.format()), bold=True)]
    if "approver" in closed:
        lines.append(PrintLine(f"Approved by {context.person(closed['approver'])}"))
    lines += [PrintLine("Session", align="center"), PrintLine(closed["session"], align="center")]
    return PrintDocument(tuple(lines))
