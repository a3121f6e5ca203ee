"""A return (or exchange) laid out as one printed receipt, in the sale receipt's 42 columns: what came back and what
it refunds, an exchange's new lines, the fee kept, the net, and how it was settled (the card refunded, cash given
back or taken). The customer can tell which sale it undid; the return's own id ends it (its new lines are an order
that may come back in turn)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from actors.printing.document import PrintDocument, PrintLine
from actors.printing.receipt import TIME_FORMAT, WIDTH
from novapos.money import Money


def _money(minor: int, currency: str) -> str:
    return Money(minor, currency).format() if minor >= 0 else "-" + Money(-minor, currency).format()


def _row(left: str, right: str) -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}"


def render_return_receipt(store_name: str, event: dict[str, Any], at: datetime) -> PrintDocument:
    """The receipt of a return.completed event ({id, seq, body}, as the print spool keeps it)."""
    body = event["body"]
    currency = body["currency"]

    def money(wire: dict[str, Any], sign: int = 1) -> str:
        return _money(sign * wire["minor"], currency)
    original = body.get("original")
    lines = [PrintLine(store_name, align="center", bold=True, double=True),
             PrintLine(at.strftime(TIME_FORMAT), align="center"),
             PrintLine(f"{'Exchange' if body['lines'] else 'Return'} #{event['seq']}  Till {body['till']}",
                       align="center"),
             PrintLine(f"Cashier {body['cashier']}", align="center"),
             PrintLine(f"Order {original['order']}" if original else f"No receipt, approved by {body['approver']}",
                       align="center"),
             PrintLine("-" * WIDTH), PrintLine("RETURNED", bold=True)]
    for item in body["returned"]:
        refunded = item["amount"]["minor"] + (0 if item["tax"]["included"] else item["tax"]["amount"]["minor"])
        lines.append(PrintLine(_row(f"{item['quantity']} x {item['name']}", _money(-refunded, currency))))
        if item["condition"] != "resaleable":
            lines.append(PrintLine(f"  ({item['condition']})"))
    if body["lines"]:
        lines.append(PrintLine("NEW", bold=True))
        for line in body["lines"]:
            lines.append(PrintLine(_row(f"{line['quantity']} x {line['name']}", money(line["amount"]))))
    lines.append(PrintLine("-" * WIDTH))
    if body["restocking_fee"]["minor"]:
        lines.append(PrintLine(_row("Restocking fee", money(body["restocking_fee"]))))
    lines.append(PrintLine(_row("TOTAL", money(body["total"])), bold=True))
    for tender in body["tenders"]:
        lines.append(PrintLine(_row(tender["method"].capitalize(), money(tender["amount"]))))
    for refund in body["refunds"]:
        card = refund.get("card")
        label = f"Refund to card {card['masked']}" if card else "Refund cash"
        lines.append(PrintLine(_row(label, money(refund["amount"]))))
    if body["change"]["minor"]:
        lines.append(PrintLine(_row("Change", money(body["change"]))))
    lines.append(PrintLine(f"Return {event['seq']}  {event['id']}", align="center"))
    return PrintDocument(lines=tuple(lines), cut=True)
