"""sale.completed v3 and return.completed v1 bodies as the tills commit them (common9.md shapes), for
receipt tests: every amount is derived the way the contract says, so a body is valid by construction.
Validated against the wire schema when that version is declared (the cart and returns work declare them)."""

from __future__ import annotations

from typing import Any

from novapos.pricing import line_tax, round_half_up
from novapos.wire.schemas import SCHEMAS

CURRENCY = "EUR"


def eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": CURRENCY}


def line(number: int, name: str, quantity: int, list_price: int, *, unit_price: int | None = None,
         attributes: list[list[str]] | None = None, override_reason: str | None = None,
         discount: tuple[str, int, str] | None = None, order_discount: int = 0, rate_ppm: int = 200_000,
         included: bool = True) -> dict[str, Any]:
    """One v3 line: `discount` is (kind, value, reason), percent in basis points or an amount per line."""
    unit = list_price if unit_price is None else unit_price
    gross = unit * quantity
    item: dict[str, Any] = {"line": f"l{number}", "sku": f"SKU-{number}", "name": name,
                            "attributes": attributes or [], "quantity": quantity, "list_price": eur(list_price),
                            "unit_price": eur(unit), "catalog_version": 1}
    if override_reason is not None:
        item["override"] = {"reason": override_reason, "approver": "manager"}
    taken = 0
    if discount is not None:
        kind, value, reason = discount
        taken = round_half_up(gross * value, 10_000) if kind == "percent" else value
        item["discount"] = {"kind": kind, "value": value, "reason": reason, "amount": eur(taken)}
    amount = gross - taken - order_discount
    item["order_discount"] = eur(order_discount)
    item["amount"] = eur(amount)
    item["tax"] = {"class": "standard" if rate_ppm == 200_000 else "reduced", "rate_ppm": rate_ppm,
                   "included": included, "amount": eur(line_tax(amount, rate_ppm, included))}
    return item


def _adds(item: dict[str, Any]) -> int:
    return int(item["amount"]["minor"]) + (0 if item["tax"]["included"] else int(item["tax"]["amount"]["minor"]))


def sale(lines: list[dict[str, Any]], tenders: list[dict[str, Any]], *, cashier: str = "alice",
         order_discount: tuple[str, int, str, int] | None = None, till: str = "till-1") -> dict[str, Any]:
    """A v3 sale.completed body; `order_discount` is (kind, value, reason, amount) already shared on the lines;
    the change is what the tenders leave over the total."""
    total = sum(_adds(item) for item in lines)
    body: dict[str, Any] = {"till": till, "session": "s1", "cashier": cashier, "currency": CURRENCY,
                            "lines": lines, "total": eur(total),
                            "tax_total": eur(sum(item["tax"]["amount"]["minor"] for item in lines)),
                            "tenders": tenders,
                            "change": eur(sum(tender["amount"]["minor"] for tender in tenders) - total)}
    if order_discount is not None:
        kind, value, reason, amount = order_discount
        body["order_discount"] = {"kind": kind, "value": value, "reason": reason, "amount": eur(amount)}
    validate("sale.completed", 3, body)
    return body


def cash(minor: int, tender_id: str = "00000000-0000-7000-8000-000000000001") -> dict[str, Any]:
    return {"id": tender_id, "method": "cash", "amount": eur(minor)}


def card(minor: int, *, scheme: str = "VISA", masked: str = "************4242", auth_code: str = "A1B2C3",
         signature: bool = False, tender_id: str = "00000000-0000-7000-8000-000000000002") -> dict[str, Any]:
    return {"id": tender_id, "method": "card", "amount": eur(minor),
            "card": {"reference": "T1-000042", "scheme": scheme, "masked": masked, "auth_code": auth_code,
                     "terminal": "T1", "signature": signature}}


def returned(original_line: int | None, name: str, quantity: int, unit: int, *, condition: str = "resaleable",
             restock: bool = True, rate_ppm: int = 200_000, included: bool = True) -> dict[str, Any]:
    """An item taken back; `original_line` None when there was no receipt."""
    amount = unit * quantity
    item: dict[str, Any] = {"sku": f"SKU-{name.split()[-1].upper()}", "name": name, "quantity": quantity,
                            "unit_price": eur(unit), "amount": eur(amount),
                            "tax": {"class": "standard", "rate_ppm": rate_ppm, "included": included,
                                    "amount": eur(line_tax(amount, rate_ppm, included))},
                            "condition": condition, "restock": restock}
    if original_line is not None:
        item["original_line"] = original_line
    return item


def return_body(back: list[dict[str, Any]], *, new_lines: list[dict[str, Any]] | None = None, fee: int = 0,
                order: str | None = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", tenders: list[dict[str, Any]] | None = None,
                refunds: list[dict[str, Any]] | None = None, approver: str | None = None,
                reason: str | None = None) -> dict[str, Any]:
    """A return.completed v1 body: total = new lines - returned + fee (negative: money back)."""
    new_lines = new_lines or []
    total = sum(_adds(item) for item in new_lines) - sum(_adds(item) for item in back) + fee
    tenders = tenders or []
    body: dict[str, Any] = {"till": "till-1", "session": "s1", "cashier": "alice", "currency": CURRENCY,
                            "returned": back, "restocking_fee": eur(fee), "lines": new_lines, "tenders": tenders,
                            "refunds": refunds or [], "total": {"minor": total, "currency": CURRENCY},
                            "change": eur(max(sum(t["amount"]["minor"] for t in tenders) - max(total, 0), 0))}
    if order is not None:
        body["original"] = {"order": order, "store": "store-001"}
    for name, value in (("approver", approver), ("reason", reason)):
        if value is not None:
            body[name] = value
    validate("return.completed", 1, body)
    return body


def validate(event_type: str, version: int, body: dict[str, Any]) -> None:
    """Hold `body` to its wire schema once that version is declared (it lands with the cart and returns work)."""
    if (event_type, version) in SCHEMAS:
        SCHEMAS[(event_type, version)](body)
