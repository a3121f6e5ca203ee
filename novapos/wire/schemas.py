"""Versioned schemas of event bodies, shared by edge (before it commits) and hub (before it applies).

A schema is a function that raises SchemaError with a readable reason or returns None.
Money fields are {"minor": int, "currency": "EUR"}: never floats. Every value is bounded so that
what passes here also fits the hub's columns (bigint, int, text without NUL): an event the schema
accepts must never make PostgreSQL or the driver refuse the batch it arrives in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Schema = Callable[[dict[str, Any]], None]

MAX_MINOR = 10**12          # ten billion euros in cents: far above any sale, far below bigint
MAX_QUANTITY = 100_000      # the till allows 9999 per line; int column, with room to spare
MAX_ID_LENGTH = 64          # tills, sessions, cashiers, SKUs
MAX_NAME_LENGTH = 200       # product names
_CURRENCY = re.compile(r"^[A-Z]{3}$")  # ISO 4217; the hub stores it as char(3)


class SchemaError(ValueError):
    """An event body breaks its schema."""


def _int(where: str, value: Any, minimum: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(f"{where} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise SchemaError(f"{where} must be between {minimum} and {maximum}, got {value}")
    return value


def _str(where: str, value: Any, max_length: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str) or not value:
        raise SchemaError(f"{where} must be a non-empty string")
    if len(value) > max_length:
        raise SchemaError(f"{where} must be at most {max_length} characters, got {len(value)}")
    if "\x00" in value:
        raise SchemaError(f"{where} must not contain NUL characters")  # PostgreSQL text cannot hold them
    return value


def _currency(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise SchemaError(f"{where} must be a 3-letter ISO currency code like 'EUR', got {value!r}")
    return value


def _money(where: str, value: Any, currency: str, minimum: int = 0) -> int:
    if not isinstance(value, dict) or set(value) != {"minor", "currency"}:
        raise SchemaError(f"{where} must be {{minor, currency}}")
    if _currency(f"{where}.currency", value["currency"]) != currency:
        raise SchemaError(f"{where} is in {value['currency']}, the sale is in {currency}")
    return _int(f"{where}.minor", value["minor"], minimum, MAX_MINOR)


def sale_completed_v1(body: dict[str, Any]) -> None:
    """A completed sale: lines, tenders, and totals that must add up."""
    _str("till", body.get("till"))
    _str("session", body.get("session"))
    _str("cashier", body.get("cashier"))
    currency = _currency("currency", body.get("currency"))
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        raise SchemaError("a sale needs at least one line")
    total = 0
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if not isinstance(line, dict):
            raise SchemaError(f"{where} must be a map")
        _str(f"{where}.sku", line.get("sku"))
        _str(f"{where}.name", line.get("name"), MAX_NAME_LENGTH)
        quantity = _int(f"{where}.quantity", line.get("quantity"), 1, MAX_QUANTITY)
        unit = _money(f"{where}.unit_price", line.get("unit_price"), currency)
        amount = _money(f"{where}.amount", line.get("amount"), currency)
        if amount != unit * quantity:
            raise SchemaError(f"{where}.amount {amount} is not quantity x unit price {unit * quantity}")
        total += amount
    if _money("total", body.get("total"), currency) != total:
        raise SchemaError(f"total does not equal the sum of the lines ({total})")
    tenders = body.get("tenders")
    if not isinstance(tenders, list) or not tenders:
        raise SchemaError("a sale needs at least one tender")
    tendered = 0
    for index, tender in enumerate(tenders):
        if not isinstance(tender, dict):
            raise SchemaError(f"tenders[{index}] must be a map")
        if tender.get("method") != "cash":
            raise SchemaError(f"tenders[{index}].method {tender.get('method')!r} is not supported (cash)")
        tendered += _money(f"tenders[{index}].amount", tender.get("amount"), currency, 1)
    change = _money("change", body.get("change"), currency)
    if tendered - total != change or change < 0:
        raise SchemaError(f"tendered {tendered} minus total {total} must equal change {change}")


SCHEMAS: dict[tuple[str, int], Schema] = {
    ("sale.completed", 1): sale_completed_v1,
}
