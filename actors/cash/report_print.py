"""The X and Z reports laid out for the receipt printer (42 columns), as print-spool renderers.

A minimal layout until the receipts work owns report printing (actors.printing): the spooler's RENDERERS map
"drawer.closed" (a Z report: the event as the outbox queued it) and "drawer.x_report" (an X report queued by the
till, never an event) to these functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from actors.printing.document import PrintDocument, PrintLine
from novapos.money import Money

WIDTH = 42
X_KIND = "drawer.x_report"


def _money(wire: dict[str, Any]) -> str:
    return Money(wire["minor"], wire["currency"]).format()


def _row(left: str, right: str) -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}"


def _figures(z: dict[str, Any]) -> list[PrintLine]:
    lines = [PrintLine(_row("Float", _money(z["float"]))),
             PrintLine(_row(f"Sales ({z['sales']['count']})", _money(z["sales"]["total"]))),
             PrintLine(_row(f"Returns ({z['returns']['count']})", _money(z["returns"]["total"])))]
    for title, key in (("Tenders", "tenders"), ("Refunds", "refunds")):
        if z[key]:
            lines.append(PrintLine(title, bold=True))
        for entry in z[key]:
            name = entry["method"].capitalize() + (f" {entry['scheme']}" if "scheme" in entry else "")
            lines.append(PrintLine(_row(f"  {name} ({entry['count']})", _money(entry["amount"]))))
    lines += [PrintLine(_row("Change given", _money(z["change"]))),
              PrintLine(_row("Discounts", _money(z["discounts"]))),
              PrintLine(_row("Voids", str(z["voids"]))), PrintLine(_row("No-sales", str(z["no_sales"])))]
    for title, key in (("Pay-ins", "pay_ins"), ("Pay-outs", "pay_outs"), ("Drops", "drops")):
        lines.append(PrintLine(_row(f"{title} ({z[key]['count']})", _money(z[key]["total"]))))
    for tax in z["tax"]:
        lines.append(PrintLine(_row(f"Tax {tax['rate_ppm'] / 10_000:g}%", _money(tax["amount"]))))
    return lines


def render_x(store_name: str, job: dict[str, Any], at: datetime) -> PrintDocument:
    """An X report: the session's figures so far and the cash expected now (no reset, no count)."""
    x = job["body"]
    return PrintDocument((PrintLine(store_name, align="center", bold=True),
                          PrintLine(f"X REPORT  Till {x['till']}", align="center", bold=True, double=True),
                          PrintLine(at.strftime("%Y-%m-%d %H:%M"), align="center"), PrintLine("-" * WIDTH),
                          *_figures(x), PrintLine("-" * WIDTH),
                          PrintLine(_row("Expected in drawer", _money(x["expected"])), bold=True)))


def render_z(store_name: str, event: dict[str, Any], at: datetime) -> PrintDocument:
    """A Z report: the closed session's figures, counted against expected, over/short, who closed and approved."""
    closed = event["body"]
    z = closed["z"]
    difference = Money(closed["difference"], closed["currency"])
    verdict = "Over" if difference.minor > 0 else "Short" if difference.minor < 0 else "Balanced"
    lines = [PrintLine(store_name, align="center", bold=True),
             PrintLine(f"Z REPORT #{z['number']}  Till {closed['till']}", align="center", bold=True, double=True),
             PrintLine(f"Closed {at.strftime('%Y-%m-%d %H:%M')} by {closed['cashier']}", align="center"),
             PrintLine(f"Opened by {z['opened_by']}", align="center"), PrintLine("-" * WIDTH),
             *_figures(z), PrintLine("-" * WIDTH),
             PrintLine(_row("Expected", _money(closed["expected"]))),
             PrintLine(_row("Counted", _money(closed["counted"]["total"]))),
             PrintLine(_row(verdict, difference.format()), bold=True)]
    if "approver" in closed:
        lines.append(PrintLine(f"Approved by {closed['approver']}"))
    return PrintDocument(tuple(lines))
