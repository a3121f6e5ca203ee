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
from novapos.pricing import PPM, line_tax
from novapos.validators import MAX_BIGINT, MAX_LINE_QUANTITY, Invalid

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


def _sale(body: dict[str, Any], line_check: Callable[[str, dict[str, Any], str, int], int]) -> None:
    """What every version of a sale shares: till, session, cashier, lines (each checked by `line_check`,
    which returns what the line adds to the total), tenders, change. A free sale (total 0: a free bag, a
    gift) may have no tender; its change is then 0 by the rule below."""
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
        total += line_check(where, line, currency, index)
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


def _line_amount(where: str, line: dict[str, Any], currency: str) -> int:
    """sku, name, quantity, unit price, and an amount that is quantity x unit price."""
    _checked(validators.token, f"{where}.sku", line.get("sku"))
    _checked(validators.text, f"{where}.name", line.get("name"))
    quantity = _checked(validators.integer, f"{where}.quantity", line.get("quantity"), 1, MAX_LINE_QUANTITY)
    unit = _money(f"{where}.unit_price", line.get("unit_price"), currency)
    amount = _money(f"{where}.amount", line.get("amount"), currency)
    if amount != unit * quantity:
        raise SchemaError(f"{where}.amount", f"{amount} is not quantity x unit price {unit * quantity}")
    return amount


def sale_completed_v1(body: dict[str, Any]) -> None:
    """A completed sale of the first stores: lines with their prices, no tax, no catalog version."""
    _sale(body, lambda where, line, currency, _index: _line_amount(where, line, currency))


def _line_v2(where: str, line: dict[str, Any], currency: str, _index: int) -> int:
    """A v1 line plus its price lock (P5-05): the catalog version it was priced from and its tax rule
    {class, rate_ppm, included, amount}, the amount by novapos.pricing's one rounding rule. A line adds
    its amount to the total, and its tax too when shelf prices exclude tax."""
    amount = _line_amount(where, line, currency)
    _checked(validators.integer, f"{where}.catalog_version", line.get("catalog_version"), 0, MAX_BIGINT)
    tax = line.get("tax")
    if not isinstance(tax, dict) or set(tax) != {"class", "rate_ppm", "included", "amount"}:
        raise SchemaError(f"{where}.tax", "must be {class, rate_ppm, included, amount}")
    _checked(validators.token, f"{where}.tax.class", tax["class"])
    rate = _checked(validators.integer, f"{where}.tax.rate_ppm", tax["rate_ppm"], 0, PPM)
    if not isinstance(tax["included"], bool):
        raise SchemaError(f"{where}.tax.included", "must be true or false")
    tax_amount = _money(f"{where}.tax.amount", tax["amount"], currency)
    if tax_amount != line_tax(amount, rate, tax["included"]):
        raise SchemaError(f"{where}.tax.amount", f"{tax_amount} is not the line's tax at {rate} ppm "
                                                 f"({line_tax(amount, rate, tax['included'])})")
    return amount if tax["included"] else amount + tax_amount


def sale_completed_v2(body: dict[str, Any]) -> None:
    """A completed sale whose every line carries its price lock and tax; `tax_total` is the lines' tax."""
    _sale(body, _line_v2)
    currency = body["currency"]
    tax_total = sum(line["tax"]["amount"]["minor"] for line in body["lines"])
    if _money("tax_total", body.get("tax_total"), currency) != tax_total:
        raise SchemaError("tax_total", f"does not equal the sum of the lines' tax ({tax_total})")


SCHEMAS: dict[tuple[str, int], Schema] = {
    ("sale.completed", 1): sale_completed_v1,
    ("sale.completed", 2): sale_completed_v2,
}
