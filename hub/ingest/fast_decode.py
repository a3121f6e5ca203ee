"""Plainly valid sales decoded at a fraction of the cost: a fast path in front of novapos.wire's decode.

Decoding and validating is most of what ingest spends per event, and half of it is the sale schema's
per-field validator calls (about 50 for a 3-line sale: 115 µs, where the same checks written inline
take 20 µs on this machine). This module checks the same rules inline, with the validators' own
patterns and bounds, for the event versions the hub sees most (sale.completed v1, v2 and v3: a v3 sale's
overrides, discounts, order discount shares and card tenders included), and accepts only what
novapos.wire.envelope.decode accepts. Anything it is not sure of (any rule broken,
an unusual shape, a free sale without tenders, another type or version, a schema that is no longer
the one written here) it leaves to decode, which alone gives reasons: so a dead letter's reason is
always decode's. tests/test_ingest_fast_decode.py holds this module to decode on valid events and on
every single-field change of them; a schema change in novapos.wire that this module does not follow
makes that test fail, or (a schema function replaced) turns this path off for that version.

Belongs in novapos.wire.schemas (one schema, checked fast) once that module can change; it lives here
because ingest's brief keeps novapos.wire out of its hands.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgpack

from novapos import validators
from novapos.pricing import BASIS_POINTS, PPM, allocate, line_tax, percent_of
from novapos.validators import MAX_BIGINT, MAX_LINE_QUANTITY, MAX_MINOR, MAX_TEXT_LENGTH, MAX_TOKEN_LENGTH
from novapos.wire import schemas
from novapos.wire.envelope import MAX_SEQ, MAX_TS_MS, MIN_TS_MS, Envelope

_TOKEN = re.compile(validators.TOKEN_PATTERN).fullmatch
_CURRENCY = re.compile(validators.CURRENCY_PATTERN).fullmatch
_UNSAFE = validators.UNSAFE_CHARACTERS.search
_MONEY = frozenset({"minor", "currency"})
_TAX = frozenset({"class", "rate_ppm", "included", "amount"})
_DISCOUNT = frozenset({"kind", "value", "reason", "amount"})
_OVERRIDE = frozenset({"reason", "approver"})
_CARD = frozenset({"reference", "scheme", "masked", "auth_code", "terminal", "signature"})


def _token(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_TOKEN_LENGTH and _TOKEN(value) is not None


def _text(value: Any, max_length: int = MAX_TEXT_LENGTH) -> bool:
    if type(value) is not str:
        return False
    stripped = value.strip()
    return 0 < len(stripped) <= max_length and _UNSAFE(stripped) is None


def _money(value: Any, currency: str, minimum: int = 0) -> int | None:
    """The minor units of {minor, currency} in the sale's currency, or None."""
    if type(value) is not dict or value.keys() != _MONEY or value["currency"] != currency:
        return None
    minor = value["minor"]
    return minor if type(minor) is int and minimum <= minor <= MAX_MINOR else None


def _line(line: Any, currency: str, locked: bool) -> tuple[int, int] | None:
    """(what the line adds to the total, its tax) for a valid line (v2's price lock when `locked`), or None."""
    if type(line) is not dict or not _token(line.get("sku")) or not _text(line.get("name")):
        return None
    quantity = line.get("quantity")
    if type(quantity) is not int or not 1 <= quantity <= MAX_LINE_QUANTITY:
        return None
    unit, amount = _money(line.get("unit_price"), currency), _money(line.get("amount"), currency)
    if unit is None or amount is None or amount != unit * quantity:
        return None
    if not locked:
        return amount, 0
    return _locked(line, amount, currency)


def _locked(line: dict[str, Any], amount: int, currency: str) -> tuple[int, int] | None:
    """(what the line adds to the total, its tax) for a valid price lock (v2 and v3) of a line of `amount`."""
    version, tax = line.get("catalog_version"), line.get("tax")
    if type(version) is not int or not 0 <= version <= MAX_BIGINT:
        return None
    if type(tax) is not dict or tax.keys() != _TAX or not _token(tax["class"]) or type(tax["included"]) is not bool:
        return None
    rate = tax["rate_ppm"]
    if type(rate) is not int or not 0 <= rate <= PPM:
        return None
    tax_amount = _money(tax["amount"], currency)
    if tax_amount is None or tax_amount != line_tax(amount, rate, tax["included"]):
        return None
    return (amount if tax["included"] else amount + tax_amount), tax_amount


def _sale(body: dict[str, Any], locked: bool) -> bool:
    """Whether the body is plainly a valid sale (v2 when `locked`); False also when only decode can tell."""
    currency = body.get("currency")
    if type(currency) is not str or _CURRENCY(currency) is None:
        return False
    if not (_token(body.get("till")) and _token(body.get("session")) and _text(body.get("cashier"))):
        return False
    lines, tenders = body.get("lines"), body.get("tenders")
    if type(lines) is not list or not lines or type(tenders) is not list or not tenders:
        return False
    total = taxes = 0
    for line in lines:
        if (adds := _line(line, currency, locked)) is None:
            return False
        total, taxes = total + adds[0], taxes + adds[1]
    if _money(body.get("total"), currency) != total:
        return False
    tendered = 0
    for tender in tenders:
        if type(tender) is not dict or tender.get("method") != "cash":
            return False
        if (amount := _money(tender.get("amount"), currency, 1)) is None:
            return False
        tendered += amount
    change = _money(body.get("change"), currency)
    if change is None or change != tendered - total:
        return False
    return not locked or _money(body.get("tax_total"), currency) == taxes


def _discount(discount: Any, gross: int, currency: str) -> int | None:
    """The amount of a valid v3 discount {kind, value, reason, amount} of `gross`, or None."""
    if type(discount) is not dict or discount.keys() != _DISCOUNT or not _text(discount["reason"]):
        return None
    kind, value, amount = discount["kind"], discount["value"], _money(discount["amount"], currency)
    if type(value) is not int or not 1 <= value <= MAX_MINOR or amount is None or amount > gross:
        return None
    if kind == "percent":
        return amount if value <= BASIS_POINTS and amount == percent_of(gross, value) else None
    return amount if kind == "amount" and amount == value else None


def _line_v3(line: Any, currency: str) -> tuple[int, int, int, int] | None:
    """(the line's amount before its order discount share, that share, what it adds to the total, its tax) for
    a valid v3 line, or None."""
    if type(line) is not dict or not _token(line.get("line")) or not _token(line.get("sku")):
        return None
    quantity, attributes = line.get("quantity"), line.get("attributes")
    if not _text(line.get("name")) or type(quantity) is not int or not 1 <= quantity <= MAX_LINE_QUANTITY:
        return None
    if type(attributes) is not list or len(attributes) > schemas.MAX_SALE_ATTRIBUTES:
        return None
    for pair in attributes:
        if type(pair) is not list or len(pair) != 2 or not _text(pair[0]) or not _text(pair[1]):
            return None
    unit, listed = _money(line.get("unit_price"), currency), _money(line.get("list_price"), currency)
    share, amount = _money(line.get("order_discount"), currency), _money(line.get("amount"), currency)
    if unit is None or listed is None or share is None or amount is None:
        return None
    if "override" in line:
        override = line["override"]
        if type(override) is not dict or override.keys() != _OVERRIDE or not _text(override["reason"]) or \
                not _text(override["approver"], 64):
            return None
    elif unit != listed:
        return None
    net = unit * quantity
    if "discount" in line:
        if (off := _discount(line["discount"], net, currency)) is None:
            return None
        net -= off
    if amount != net - share or (adds := _locked(line, amount, currency)) is None:
        return None
    return net, share, *adds


def _tenders_v3(tenders: list[Any], currency: str) -> tuple[int, int] | None:
    """(cash, card) taken by valid v3 tenders, or None."""
    cash = card = 0
    for tender in tenders:
        if type(tender) is not dict or not _token(tender.get("id")):
            return None
        if (amount := _money(tender.get("amount"), currency, 1)) is None:
            return None
        method = tender.get("method")
        if method == "cash" and "card" not in tender:
            cash += amount
            continue
        details = tender.get("card")
        if method != "card" or type(details) is not dict or details.keys() != _CARD:
            return None
        if not (_text(details["reference"]) and _token(details["scheme"]) and _text(details["masked"], 32)
                and _text(details["auth_code"], 32) and _token(details["terminal"])
                and type(details["signature"]) is bool):
            return None
        card += amount
    return cash, card


def _sale_v3(body: dict[str, Any]) -> bool:
    """Whether the body is plainly a valid sale.completed v3; False also when only decode can tell."""
    currency = body.get("currency")
    if type(currency) is not str or _CURRENCY(currency) is None:
        return False
    if not (_token(body.get("till")) and _token(body.get("session")) and _text(body.get("cashier"))):
        return False
    if "drawer_session" in body and not _token(body["drawer_session"]):
        return False
    lines, tenders = body.get("lines"), body.get("tenders")
    if type(lines) is not list or not lines or type(tenders) is not list or not tenders:
        return False
    nets, shares = [], []
    total = taxes = 0
    for line in lines:
        if (checked := _line_v3(line, currency)) is None:
            return False
        nets.append(checked[0])
        shares.append(checked[1])
        total, taxes = total + checked[2], taxes + checked[3]
    off = _discount(body["order_discount"], sum(nets), currency) if "order_discount" in body else 0
    if off is None or shares != allocate(off, nets) or _money(body.get("total"), currency) != total:
        return False
    if (taken := _tenders_v3(tenders, currency)) is None:
        return False
    cash, card = taken
    change = _money(body.get("change"), currency)
    if change is None or change != cash + card - total or change > cash or card > total:
        return False
    return _money(body.get("tax_total"), currency) == taxes


_BODIES = {("sale.completed", 1): (schemas.sale_completed_v1, lambda body: _sale(body, False)),
           ("sale.completed", 2): (schemas.sale_completed_v2, lambda body: _sale(body, True)),
           ("sale.completed", 3): (schemas.sale_completed_v3, _sale_v3)}
"""The versions checked here, with the schema each mirrors and the check that mirrors it."""


def decode(data: bytes) -> Envelope | None:
    """The event, when it is plainly a valid sale; None means: ask novapos.wire.envelope.decode."""
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:
        return None
    if type(raw) is not dict:
        return None
    fields: list[Any] = [raw.get(key) for key in ("id", "type", "v", "tenant", "store", "seq", "ts", "body")]
    event_id, kind, v, tenant, store, seq, ts, body = fields
    if type(event_id) is not bytes or len(event_id) != 16 or type(kind) is not str or type(v) is not int:
        return None
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ or type(ts) is not int or not MIN_TS_MS <= ts <= MAX_TS_MS:
        return None
    if not (_token(kind.replace(".", "_")) and _token(tenant) and _token(store)) or type(body) is not dict:
        return None
    mirrored = _BODIES.get((kind, v))
    if mirrored is None or schemas.SCHEMAS.get((kind, v)) is not mirrored[0] or not mirrored[1](body):
        return None
    return Envelope(id=uuid.UUID(bytes=event_id), type=kind, v=v, tenant=tenant, store=store, seq=seq, ts=ts,
                    body=body)
