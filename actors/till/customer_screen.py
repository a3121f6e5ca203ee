"""What the customer display shows, from the till's state: two short lines a shopper reads at a glance."""

from __future__ import annotations

from typing import Any

from novapos.money import Money

WIDTH = 20


def _money(wire: dict[str, Any]) -> str:
    """The amount without its currency code: a 20-column screen has no room for it."""
    return Money(wire["minor"], wire["currency"]).format().split(" ")[0]


def _row(left: str, right: str) -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}"


def for_state(state: dict[str, Any], store_name: str) -> tuple[str, str]:
    """The cart as it stands: the last item scanned and the total, or what is still due; the QR code to scan while
    a QR payment waits for the customer's phone."""
    waiting = next((t for t in state.get("tenders", []) if t["method"] == "qr" and t["state"] == "pending"), None)
    if waiting is not None:
        return "Scan the QR code", _row("TO PAY", _money(waiting["amount"]))
    if not state["lines"]:
        return ("Welcome", store_name) if state["session"] else ("Till closed", store_name)
    last = state["lines"][-1]
    top = _row(f"{last['quantity']}x {last['name']}" if last["quantity"] > 1 else last["name"], _money(last["amount"]))
    if state["tendered"]["minor"]:
        return top, _row("DUE", _money(state["due"]))
    return top, _row("TOTAL", _money(state["total"]))


def for_receipt(receipt: dict[str, Any]) -> tuple[str, str]:
    """After a sale: the change to hand over, and thanks."""
    return _row("CHANGE", _money(receipt["change"])), "Thank you!"
