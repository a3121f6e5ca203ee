"""The changes a person may make to a catalog, each validated at the door (shape only: whether a tax class
or region exists is the service's question, asked inside the change's transaction).

Each `*_from_json` takes a request body (a dict of JSON values) and returns the change, or raises Invalid
with a sentence naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.catalog.barcodes import barcode
from novapos import validators
from novapos.pricing import SCOPES, Scope
from novapos.validators import Invalid, describe
from novapos.wire.catalog import MAX_ATTRIBUTES, MAX_BARCODES

MAX_VARIANTS = 500
"""Variants of one product in one change (a request body is at most 64 KiB anyway)."""


@dataclass(frozen=True)
class VariantChange:
    sku: str
    values: tuple[str, ...]
    """One value per attribute of the product, in its order."""
    name: str | None
    """None: the product's name followed by the values ("T-shirt M red")."""
    active: bool


@dataclass(frozen=True)
class ProductChange:
    product: str
    name: str
    tax_class: str
    attributes: tuple[str, ...]
    active: bool
    variants: tuple[VariantChange, ...]
    category: str | None = None
    """A path such as "food/dairy/cheese" (promotions target it and everything below it); "": none; None (the
    field left out): the product keeps the one it has."""


@dataclass(frozen=True)
class BarcodesChange:
    sku: str
    barcodes: tuple[str, ...]
    """The variant's whole set: codes not listed are taken off it."""


@dataclass(frozen=True)
class PriceChange:
    sku: str
    scope: Scope
    scope_id: str
    effective_from: datetime | None
    """None: from the moment the change commits."""
    amount_minor: int


@dataclass(frozen=True)
class TaxClassChange:
    tax_class: str
    name: str
    rates: tuple[tuple[str, int], ...]
    """(region, rate_ppm): the rate in each region listed; regions not listed keep theirs."""


def variant_name(product_name: str, values: tuple[str, ...]) -> str:
    return " ".join((product_name, *values))[:validators.MAX_TEXT_LENGTH]


def _list(where: str, value: Any, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(where, f"must be a list, got {describe(value)}")
    if len(value) > most:
        raise Invalid(where, f"may hold at most {most} entries, got {len(value)}")
    return value


def _object(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(where, f"must be an object, got {describe(value)}")
    return value


def _flag(where: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Invalid(where, f"must be true or false, got {describe(value)}")
    return value


def _unique(where: str, values: list[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise Invalid(where, f"lists {value!r} twice")
        seen.add(value)
    return tuple(values)


def attributes(where: str, value: Any) -> tuple[str, ...]:
    names = [validators.text(f"{where}[{index}]", name, max_length=validators.MAX_TOKEN_LENGTH)
             for index, name in enumerate(_list(where, [] if value is None else value, MAX_ATTRIBUTES))]
    return _unique(where, names)


def product_from_json(body: dict[str, Any]) -> ProductChange:
    name = validators.text("name", body.get("name"))
    names = attributes("attributes", body.get("attributes"))
    variants = []
    for index, raw in enumerate(_list("variants", body.get("variants", []), MAX_VARIANTS)):
        where = f"variants[{index}]"
        entry = _object(where, raw)
        values = tuple(validators.text(f"{where}.values[{position}]", value, max_length=validators.MAX_TOKEN_LENGTH)
                       for position, value in enumerate(_list(f"{where}.values", entry.get("values", []), MAX_ATTRIBUTES)))
        if len(values) != len(names):
            raise Invalid(f"{where}.values", f"must give one value per attribute ({len(names)}: "
                                             f"{', '.join(names) or 'none'}), got {len(values)}")
        variants.append(VariantChange(
            sku=validators.token(f"{where}.sku", entry.get("sku")), values=values,
            name=None if entry.get("name") is None else validators.text(f"{where}.name", entry.get("name")),
            active=_flag(f"{where}.active", entry.get("active"), True)))
    _unique("variants' skus", [variant.sku for variant in variants])
    if names:
        _unique("variants' attribute values", [" / ".join(variant.values) for variant in variants])
    return ProductChange(product=validators.token("product", body.get("product")), name=name,
                         tax_class=validators.token("tax_class", body.get("tax_class")), attributes=names,
                         active=_flag("active", body.get("active"), True), variants=tuple(variants),
                         category=None if "category" not in body else "" if body["category"] in (None, "") else
                         validators.category("category", body["category"]))


def barcodes_from_json(body: dict[str, Any]) -> BarcodesChange:
    codes = [barcode(f"barcodes[{index}]", code)
             for index, code in enumerate(_list("barcodes", body.get("barcodes"), MAX_BARCODES))]
    return BarcodesChange(sku=validators.token("sku", body.get("sku")), barcodes=_unique("barcodes", codes))


def timestamp(where: str, value: Any) -> datetime:
    """An ISO 8601 time with its offset (2026-12-24T00:00:00+01:00): a price starts at one instant everywhere."""
    if not isinstance(value, str) or len(value) > 40:
        raise Invalid(where, f"must be an ISO 8601 time such as '2026-12-24T00:00:00+01:00', got {describe(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(where, f"must be an ISO 8601 time such as '2026-12-24T00:00:00+01:00', got {describe(value)}") from None
    if parsed.tzinfo is None:
        raise Invalid(where, "must say its offset from UTC (a trailing Z or +01:00): stores are in several time zones")
    if parsed.year < 2000:
        raise Invalid(where, f"must be in the year 2000 or later, got {value}")
    return parsed


def price_from_json(body: dict[str, Any]) -> PriceChange:
    scope = body.get("scope", "tenant")
    if scope not in SCOPES:
        raise Invalid("scope", f"must be tenant, region or store, got {describe(scope)}")
    scope_id = "" if scope == "tenant" else validators.token("scope_id", body.get("scope_id"))
    if scope == "tenant" and body.get("scope_id") not in (None, ""):
        raise Invalid("scope_id", "must be left out for a tenant price (it names the region or store of an override)")
    amount = body.get("amount_minor")
    if isinstance(amount, int) and not isinstance(amount, bool) and amount < 0:
        raise Invalid("amount_minor", f"must not be negative, got {amount}: a price is what the customer pays")
    return PriceChange(
        sku=validators.token("sku", body.get("sku")), scope=scope, scope_id=scope_id,
        effective_from=None if body.get("effective_from") is None else timestamp("effective_from", body["effective_from"]),
        amount_minor=validators.minor_units("amount_minor", amount))


def tax_class_from_json(body: dict[str, Any]) -> TaxClassChange:
    rates = []
    for index, raw in enumerate(_list("rates", body.get("rates", []), 1000)):
        entry = _object(f"rates[{index}]", raw)
        rates.append((validators.token(f"rates[{index}].region", entry.get("region")),
                      validators.integer(f"rates[{index}].rate_ppm", entry.get("rate_ppm"), 0, 1_000_000)))
    _unique("rates' regions", [region for region, _ in rates])
    return TaxClassChange(tax_class=validators.token("tax_class", body.get("tax_class")),
                          name=validators.text("name", body.get("name")), rates=tuple(rates))


def prices_include_tax_from_json(body: dict[str, Any]) -> bool:
    value = body.get("prices_include_tax")
    if not isinstance(value, bool):
        raise Invalid("prices_include_tax", f"must be true or false, got {describe(value)}")
    return value
