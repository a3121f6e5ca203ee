"""A completed sale laid out as a printed receipt (42 columns, the common 80 mm font A width).

A v3 line shows its variant (size, colour), a price override and its discounts under it.

A sale of v2 (price locks) shows its tax per class and rate: "incl." under the total when shelf prices
include it, or a subtotal, the tax and the total when it is added. A v1 sale (printed late, after an
upgrade) has no tax to show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from actors.printing.document import PrintDocument, PrintLine
from novapos.money import Money

WIDTH = 42
TIME_FORMAT = "%Y-%m-%d %H:%M"


def _money(wire: dict[str, Any]) -> str:
    return Money(wire["minor"], wire["currency"]).format()


def _row(left: str, right: str) -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}"


def render_receipt(store_name: str, event: dict[str, Any], sold_at: datetime) -> PrintDocument:
    """The receipt of a sale.completed event ({id, seq, body}, as the print spool keeps it), sold at
    `sold_at` in the store's local time: whoever holds it can tell which store, sale, till and moment."""
    sale = event["body"]
    lines = [PrintLine(store_name, align="center", bold=True, double=True),
             PrintLine(sold_at.strftime(TIME_FORMAT), align="center"),
             PrintLine(f"Sale #{event['seq']}  Till {sale['till']}", align="center"),
             PrintLine(f"Cashier {sale['cashier']}", align="center"),
             PrintLine("-" * WIDTH)]
    for item in sale["lines"]:
        lines.extend(_item_rows(item))
    lines.append(PrintLine("-" * WIDTH))
    lines.extend(_tax_lines(sale))
    for tender in sale["tenders"]:
        lines.append(PrintLine(_row(tender["method"].capitalize(), _money(tender["amount"]))))
    lines.append(PrintLine(_row("Change", _money(sale["change"]))))
    lines.append(PrintLine(f"Sale {event['seq']}  {event['id']}", align="center"))
    return PrintDocument(lines=tuple(lines), cut=True)  # the till opens the drawer itself, not via the print queue


def _item_rows(item: dict[str, Any]) -> list[PrintLine]:
    """A sold line: its price before discounts, then (v3) its variant, a price override and each discount it
    had, so the customer sees what they were given; a plain line is one row."""
    currency = item["amount"]["currency"]
    gross = Money(item["unit_price"]["minor"] * item["quantity"], currency).format()
    rows = [PrintLine(_row(f"{item['quantity']} x {item['name']}", gross))]
    if item.get("attributes"):
        rows.append(PrintLine("  " + ", ".join(value for _name, value in item["attributes"])))
    if "override" in item:
        rows.append(PrintLine(f"  price {_money(item['list_price'])} -> {_money(item['unit_price'])} "
                              f"{item['override']['reason']}"[:WIDTH]))
    if "discount" in item:
        discount = item["discount"]
        value = discount["value"]
        what = (f"{value // 100}%" if value % 100 == 0 else f"{value // 100}.{value % 100:02d}%") \
            if discount["kind"] == "percent" else "discount"
        rows.append(PrintLine(_row(f"  {what} {discount['reason']}", f"-{_money(discount['amount'])}")))
    if item.get("order_discount", {}).get("minor"):
        rows.append(PrintLine(_row("  order discount", f"-{_money(item['order_discount'])}")))
    return rows


def _percent(rate_ppm: int) -> str:
    """A rate in parts per million as a percentage with two decimals, in integers (70000 -> 7.00%)."""
    return f"{rate_ppm // 10_000}.{rate_ppm % 10_000 // 100:02d}%"


def _tax_lines(sale: dict[str, Any]) -> list[PrintLine]:
    """The total, with the tax of each (included, class, rate) group of lines: before it when added, under it when included."""
    groups: dict[tuple[bool, str, int], int] = {}
    for item in sale["lines"]:
        if "tax" in item:
            tax = item["tax"]
            key = (tax["included"], tax["class"], tax["rate_ppm"])
            groups[key] = groups.get(key, 0) + tax["amount"]["minor"]
    currency = sale["currency"]
    total = PrintLine(_row("TOTAL", _money(sale["total"])), bold=True)
    added = [PrintLine(_row(f"Tax {cls} {_percent(rate)}", Money(amount, currency).format()))
             for (included, cls, rate), amount in sorted(groups.items()) if not included]
    inside = [PrintLine(_row(f"  incl. tax {cls} {_percent(rate)}", Money(amount, currency).format()))
              for (included, cls, rate), amount in sorted(groups.items()) if included]
    if added:
        subtotal = sum(item["amount"]["minor"] for item in sale["lines"])
        added.insert(0, PrintLine(_row("Subtotal", Money(subtotal, currency).format())))
    return [*added, total, *inside]


def late_heading(seq: int, sold_at: datetime) -> tuple[PrintLine, ...]:
    """Heads a receipt printed well after its sale, so it is never taken for the next customer's."""
    return (PrintLine(f"LATE RECEIPT - sale #{seq} {sold_at.strftime(TIME_FORMAT)}", align="center", bold=True),
            PrintLine("=" * WIDTH))
