"""Versioned schemas of event bodies, shared by edge (before it commits) and hub (before it applies).

A schema is a function that raises SchemaError with a readable reason or returns None. Every field
is checked with novapos.validators, the same checks and bounds the HTTP door and the config loader
use, so a value the door let through is never refused here, and what passes here fits the hub's
columns (bigint, int, text without NUL) and its logs (no control characters, no lone surrogates).
Money fields are {"minor": int, "currency": "EUR"}: never floats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from novapos import validators
from novapos.validators import MAX_LINE_QUANTITY, Invalid

Schema = Callable[[dict[str, Any]], None]


class SchemaError(Invalid):
    """An event body breaks its schema; `where` names the field (or the rule) it breaks."""


def _checked(check: Callable[..., Any], where: str, *args: Any, **kwargs: Any) -> Any:
    """Run a validator, its refusal raised as a SchemaError (so callers can tell the wire from the door)."""
    try:
        return check(where, *args, **kwargs)
    except SchemaError:
        raise
    except Invalid as exc:
        raise SchemaError(exc.where, str(exc).removeprefix(f"{exc.where} ")) from None


def _money(where: str, value: Any, currency: str, minimum: int = 0) -> int:
    if not isinstance(value, dict) or set(value) != {"minor", "currency"}:
        raise SchemaError(where, "must be {minor, currency}")
    if _checked(validators.currency, f"{where}.currency", value["currency"]) != currency:
        raise SchemaError(where, f"is in {value['currency']}, the sale is in {currency}")
    minor: int = _checked(validators.minor_units, f"{where}.minor", value["minor"], minimum=minimum)
    return minor


def sale_completed_v1(body: dict[str, Any]) -> None:
    """A completed sale: lines, tenders, and totals that must add up. A free sale (total 0: a free bag,
    a gift) may have no tender; its change is then 0 by the rule below."""
    _checked(validators.token, "till", body.get("till"))
    _checked(validators.token, "session", body.get("session"))
    _checked(validators.text, "cashier", body.get("cashier"))
    currency = _checked(validators.currency, "currency", body.get("currency"))
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        raise SchemaError("lines", "must hold at least one line: a sale needs one")
    total = 0
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if not isinstance(line, dict):
            raise SchemaError(where, "must be a map")
        _checked(validators.token, f"{where}.sku", line.get("sku"))
        _checked(validators.text, f"{where}.name", line.get("name"))
        quantity = _checked(validators.integer, f"{where}.quantity", line.get("quantity"), 1, MAX_LINE_QUANTITY)
        unit = _money(f"{where}.unit_price", line.get("unit_price"), currency)
        amount = _money(f"{where}.amount", line.get("amount"), currency)
        if amount != unit * quantity:
            raise SchemaError(f"{where}.amount", f"{amount} is not quantity x unit price {unit * quantity}")
        total += amount
    if _money("total", body.get("total"), currency) != total:
        raise SchemaError("total", f"does not equal the sum of the lines ({total})")
    tenders = body.get("tenders")
    if not isinstance(tenders, list) or (not tenders and total > 0):
        raise SchemaError("tenders", "must hold at least one tender: a sale with something to pay needs one")
    tendered = 0
    for index, tender in enumerate(tenders):
        if not isinstance(tender, dict):
            raise SchemaError(f"tenders[{index}]", "must be a map")
        if tender.get("method") != "cash":
            raise SchemaError(f"tenders[{index}].method", f"{validators.describe(tender.get('method'))} "
                                                          "is not supported (cash)")
        tendered += _money(f"tenders[{index}].amount", tender.get("amount"), currency, 1)
    change = _money("change", body.get("change"), currency)
    if tendered - total != change or change < 0:
        raise SchemaError("change", f"must equal tendered {tendered} minus total {total}, got {change}")


SCHEMAS: dict[tuple[str, int], Schema] = {
    ("sale.completed", 1): sale_completed_v1,
}
