"""Versioned event contracts (P15-01): a schema that changes incompatibly without a new version fails here."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from novapos.wire.contract import (
    CONTRACTS_DIR,
    Boolean,
    Choice,
    Declaration,
    Field,
    Integer,
    List,
    Map,
    Money,
    Text,
    Token,
    canonical,
    changes,
    contract,
    departures,
    freeze_missing,
)
from novapos.wire.envelope import decode
from novapos.wire.schemas import (
    DECLARATIONS,
    SALE_COMPLETED_V1,
    SALE_COMPLETED_V2,
    SALE_COMPLETED_V4,
    SCHEMAS,
    SchemaError,
)
from tests import drawer_events
from tests.events import sale_event, sale_v3_body, sale_v4_body, sale_v5_body

AUDIT_BODY = {"action": "till.override", "actor": "bob", "approver": "mia", "till": "till-1", "target": "COF-250",
              "reason": "damaged box", "details": {"from_minor": 499, "to_minor": 399}}
OTHERS = tuple(d for d in DECLARATIONS if d.type != "sale.completed")


def _replacing(declared: Declaration, *by: Declaration) -> tuple[Declaration, ...]:
    """Every declaration, with `declared` swapped for `by` (dropped when `by` is empty)."""
    return tuple(d for known in DECLARATIONS for d in ((*by,) if known is declared else (known,)))
"""The other events' declarations, unchanged beside the sale's variants below."""


def test_every_declared_version_is_exactly_its_frozen_contract() -> None:
    assert departures(DECLARATIONS) == []
    for declaration in DECLARATIONS:  # and the file is the canonical text of it, byte for byte
        path = CONTRACTS_DIR / f"{declaration.type}.v{declaration.v}.json"
        assert path.read_text(encoding="utf-8") == canonical(contract(declaration))


def test_every_declared_version_is_validated_and_the_previous_one_still_is() -> None:
    assert set(SCHEMAS) == {(d.type, d.v) for d in DECLARATIONS} >= {("sale.completed", 1), ("sale.completed", 2)}


def _with_field(body: Map, path: tuple[str, ...], change) -> Map:  # type: ignore[no-untyped-def]
    """The body map with the field at `path` (names, through lists' items) replaced by change(field)."""
    fields = []
    for item in body.fields:
        if item.name != path[0]:
            fields.append(item)
        elif len(path) == 1:
            fields.extend(change(item))
        else:
            inner = item.kind.items if isinstance(item.kind, List) else item.kind
            replaced = _with_field(inner, path[1:], change)
            kind = dataclasses.replace(item.kind, items=replaced) if isinstance(item.kind, List) else replaced
            fields.append(dataclasses.replace(item, kind=kind))
    return dataclasses.replace(body, fields=tuple(fields))


def _frozen_now(tmp_path: Path) -> Path:
    freeze_missing(DECLARATIONS, tmp_path)
    return tmp_path


@pytest.mark.parametrize(("path", "change", "says"), [
    (("lines", "quantity"), lambda f: [dataclasses.replace(f, kind=Integer(1, 99_999))],
     "body.lines[].quantity: maximum 9999 became 99999"),
    (("lines", "quantity"), lambda f: [dataclasses.replace(f, kind=Text())],
     'body.lines[].quantity: kind "integer" became "text"'),
    (("cashier",), lambda f: [], "body.cashier: removed"),
    (("cashier",), lambda f: [f, Field("loyalty_card", Text())], "body.loyalty_card: added"),
    (("cashier",), lambda f: [dataclasses.replace(f, required=False)], "body.cashier: required true became false"),
    (("tenders", "amount"), lambda f: [dataclasses.replace(f, kind=dataclasses.replace(f.kind, minimum=0))],
     "body.tenders[].amount: minimum 1 became 0"),
])
def test_an_incompatible_change_to_a_frozen_version_fails_naming_the_field(  # type: ignore[no-untyped-def]
        tmp_path: Path, path, change, says: str) -> None:
    folder = _frozen_now(tmp_path)
    changed = dataclasses.replace(SALE_COMPLETED_V1, body=_with_field(SALE_COMPLETED_V1.body, path, change))
    [found] = departures(_replacing(SALE_COMPLETED_V1, changed), folder)
    assert found.startswith("sale.completed v1 changed since it was frozen")
    assert says in found
    latest = max(d.v for d in DECLARATIONS if d.type == "sale.completed")
    assert f"add version {latest + 1} instead" in found and "keep v1 as frozen" in found


def test_a_changed_rule_or_order_is_a_changed_contract(tmp_path: Path) -> None:
    folder = _frozen_now(tmp_path)
    body = SALE_COMPLETED_V2.body
    loosened = dataclasses.replace(body, rules=body.rules[:-1])  # tax_total no longer enforced
    reworded = dataclasses.replace(body, rules=(*body.rules[:-1], dataclasses.replace(body.rules[-1], formula="any")))
    reordered = dataclasses.replace(body, fields=(body.fields[1], body.fields[0], *body.fields[2:]))
    for variant, says in [(loosened, "body rule 'tax_total': removed"),
                          (reworded, "body rule 'tax_total': formula"),
                          (reordered, "body: its fields are checked in another order")]:
        [found] = departures(_replacing(SALE_COMPLETED_V2, dataclasses.replace(SALE_COMPLETED_V2, body=variant)),
                             folder)
        assert found.startswith("sale.completed v2 changed") and says in found, found


def test_a_new_version_needs_its_file_and_an_old_one_never_goes(tmp_path: Path) -> None:
    folder = _frozen_now(tmp_path)
    nxt = Declaration("sale.completed", 99, SALE_COMPLETED_V4.body, "next")
    [missing] = departures((*DECLARATIONS, nxt), folder)
    assert "sale.completed v99 has no contract file sale.completed.v99.json" in missing
    assert freeze_missing((*DECLARATIONS, nxt), folder) == [folder / "sale.completed.v99.json"]
    assert departures((*DECLARATIONS, nxt), folder) == []
    [dropped] = departures((*_replacing(SALE_COMPLETED_V1), nxt), folder)
    assert "sale.completed v1 is frozen but no longer declared" in dropped


def test_freezing_never_rewrites_a_frozen_contract(tmp_path: Path) -> None:
    folder = _frozen_now(tmp_path)
    before = (folder / "sale.completed.v1.json").read_bytes()
    changed = dataclasses.replace(SALE_COMPLETED_V1, body=_with_field(SALE_COMPLETED_V1.body, ("cashier",), lambda f: []))
    assert freeze_missing((changed,), folder) == []
    assert (folder / "sale.completed.v1.json").read_bytes() == before


def test_an_unchanged_contract_has_no_changes() -> None:
    assert changes(contract(SALE_COMPLETED_V2)["body"], contract(SALE_COMPLETED_V2)["body"]) == []


def _goods(declaration: Declaration) -> list[dict[str, Any]]:
    """Bodies each declaration accepts; where a list's items come in kinds (a QR or a card tender), one body per kind
    first in its list, so that every declared field is reached through a first item."""
    return {("sale.completed", 1): [sale_event().body], ("sale.completed", 2): [_v2_body()],
            ("sale.completed", 3): [sale_v3_body()], ("sale.completed", 4): [sale_v4_body(), sale_v3_body()],
            ("sale.completed", 5): [sale_v5_body(), sale_v5_body(gift_card_first=True),
                                     {**sale_v4_body(), "promotions_version": 0},
                                     {**sale_v3_body(), "promotions_version": 0}],
            ("audit.recorded", 1): [AUDIT_BODY], ("return.completed", 1): [RETURN_BODY],
            ("return.completed", 2): [RETURN_BODY_QR, RETURN_BODY],
            ("return.completed", 3): [RETURN_BODY_LOYALTY, RETURN_BODY_GIFT_CARD, RETURN_BODY_QR, RETURN_BODY],
            ("drawer.opened", 1): [drawer_events.opened()], ("drawer.moved", 1): [drawer_events.moved()],
            ("drawer.closed", 1): [drawer_events.closed()], ("card.approved", 1): [CARD_APPROVED_BODY],
            ("card.declined", 1): [CARD_DECLINED_BODY]}[(declaration.type, declaration.v)]


def _good(declaration: Declaration) -> dict[str, Any]:
    """A body each declaration accepts."""
    return _goods(declaration)[0]


def _eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


RETURN_BODY = {
    "till": "till-1", "session": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "cashier": "bob", "currency": "EUR",
    "drawer_session": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
    "original": {"order": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d", "store": "store-001"}, "approver": "mia",
    "reason": "too small",
    "returned": [{"original_line": 1, "sku": "COF-250", "name": "Coffee", "quantity": 1, "unit_price": _eur(499),
                  "amount": _eur(499), "tax": {"class": "standard", "rate_ppm": 200_000, "included": True,
                                               "amount": _eur(83)}, "condition": "resaleable", "restock": True}],
    "restocking_fee": _eur(0),
    "lines": [{"sku": "MLK-1L", "name": "Milk", "quantity": 1, "unit_price": _eur(129), "amount": _eur(129),
               "catalog_version": 7, "tax": {"class": "standard", "rate_ppm": 200_000, "included": True,
                                             "amount": _eur(21)}}],
    "tenders": [{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e", "method": "cash", "amount": _eur(100)}],
    "refunds": [{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5f", "method": "card", "amount": _eur(470),
                 "card": {"reference": "R1", "original_reference": "P1", "scheme": "visa", "masked": "****4242"}}],
    "change": _eur(0), "total": _eur(-370)}
"""A return.completed v1 the schema accepts: a coffee back, a milk taken, the customer refunded 4.70 to the
card after handing over 1.00 cash (every optional field present, so every bound is reached)."""
RETURN_BODY_QR = {**RETURN_BODY, "refunds": [
    {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60", "method": "qr", "amount": _eur(470),
     "qr": {"intent": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a61", "provider_ref": "qr_3f9a1c"}}]}
"""The same return refunded to the sale's QR payment through the hub: return.completed v2."""

RETURN_BODY_LOYALTY = {**RETURN_BODY, "customer": {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a70"}, "refunds": [
    {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a71", "method": "points", "amount": _eur(470),
     "points": {"customer": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a70", "points": 470}}]}
"""The same return, of a sale made for a customer, refunded to the points it was paid with: return.completed v3."""
RETURN_BODY_GIFT_CARD = {**RETURN_BODY, "refunds": [
    {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a72", "method": "gift_card", "amount": _eur(470),
     "gift_card": {"card": "************1234", "redemption": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a73"}}]}


CARD_APPROVED_BODY = {
    "till": "till-1", "tender": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60", "currency": "EUR", "amount": _eur(1250),
    "card": {"reference": "0190a1b2c3d47e5f8a9b0c1d2e3f4a60", "scheme": "VISA", "masked": "************0002",
             "auth_code": "100001", "terminal": "term-1"},
    "offline": True, "card_token": "tok_4000000000000002"}
"""A card.approved v1 taken offline (its card token present), with every optional field."""
CARD_DECLINED_BODY = {
    "till": "till-1", "tender": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a61", "currency": "EUR", "amount": _eur(400),
    "card": {"reference": "0190a1b2c3d47e5f8a9b0c1d2e3f4a61", "scheme": "VISA", "masked": "************0002",
             "terminal": "term-1"},
    "message": "DECLINED BY ISSUER"}


def test_a_card_approval_carries_its_card_token_exactly_when_offline() -> None:
    SCHEMAS[("card.approved", 1)](CARD_APPROVED_BODY)
    online = {**_copy(CARD_APPROVED_BODY), "offline": False}
    with pytest.raises(SchemaError, match="offline"):
        SCHEMAS[("card.approved", 1)](online)
    del online["card_token"]
    SCHEMAS[("card.approved", 1)](online)
    with pytest.raises(SchemaError, match="offline"):
        SCHEMAS[("card.approved", 1)]({**_copy(online), "offline": True})


def _required_paths(kind: Map, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for item in kind.fields:
        if not item.required:
            continue
        paths.append((*prefix, item.name))
        inner = item.kind.items if isinstance(item.kind, List) else item.kind
        if isinstance(inner, Map) and inner.fields and inner.fields[0].name != "minor":
            paths += _required_paths(inner, (*prefix, item.name))
    return paths


@pytest.mark.parametrize("declaration", DECLARATIONS, ids=lambda d: f"{d.type}.v{d.v}")
def test_the_generated_validator_refuses_each_missing_field_by_name(declaration: Declaration) -> None:
    """The validator is the declaration: every declared field is checked, and its refusal names it."""
    good = _good(declaration)
    SCHEMAS[(declaration.type, declaration.v)](good)
    for path in _required_paths(declaration.body):
        body = _copy(good)
        holder = body
        where = []
        for name in path[:-1]:
            listed = isinstance(holder[name], list)
            holder = holder[name][0] if listed else holder[name]
            where.append(f"{name}[0]" if listed else name)
        del holder[path[-1]]
        with pytest.raises(SchemaError) as refused:
            SCHEMAS[(declaration.type, declaration.v)](body)
        expected = ".".join([*where, path[-1]])
        assert refused.value.where in (expected, ".".join(where)), (path, str(refused.value))


def _copy(value):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _v2_body(included: bool = True) -> dict:  # type: ignore[type-arg]
    body = _copy(sale_event().body)
    tax = 83 if included else 100
    body["lines"][0] |= {"catalog_version": 7, "tax": {"class": "standard", "rate_ppm": 200_000, "included": included,
                                                      "amount": {"minor": tax, "currency": "EUR"}}}
    body["tax_total"] = {"minor": tax, "currency": "EUR"}
    if not included:
        for money in (body["total"], body["tenders"][0]["amount"]):
            money["minor"] = 599
    return body


@pytest.mark.parametrize("included", [True, False])
def test_a_v2_sale_lands_with_its_tax_included_or_added(included: bool) -> None:
    event = dataclasses.replace(sale_event(), v=2, body=_v2_body(included))
    assert decode(event.encode()) == event


def _leaves(kind: Map, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every leaf field of a declaration with its path in a body (lists through their first item)."""
    for item in kind.fields:
        inner = item.kind.items if isinstance(item.kind, List) else item.kind
        where = (*path, item.name, 0) if isinstance(item.kind, List) else (*path, item.name)
        if isinstance(inner, Map):
            yield from _leaves(inner, where)
        else:
            yield where, inner


def _reaches(body: Any, path: tuple[str | int, ...]) -> bool:
    """Whether `body` holds something at `path` (the parent of a leaf)."""
    for step in path:
        if (isinstance(step, int) and isinstance(body, list) and len(body) > step) or \
                (isinstance(step, str) and isinstance(body, dict) and step in body):
            body = body[step]
        else:
            return False
    return True


def _outside(kind: Any) -> list[Any]:
    """Values just outside what a leaf kind declares."""
    if isinstance(kind, Integer):
        return [kind.minimum - 1, kind.maximum + 1, True, 1.0]
    if isinstance(kind, Money):
        return [{"minor": kind.minimum - 1, "currency": "EUR"}, {"minor": kind.maximum + 1, "currency": "EUR"},
                {"minor": 1, "currency": "USD"}, {"minor": 1}]
    if isinstance(kind, Token):
        return ["x" * (kind.max_length + 1), "a.b", ""]
    if isinstance(kind, Text):
        return ["x" * (kind.max_length + 1), "a\x00b", 7]
    if isinstance(kind, Choice):
        return ["other", None]
    if isinstance(kind, Boolean):
        return [1, "true"]
    return [None, "XX"]  # Currency


@pytest.mark.parametrize("declaration", DECLARATIONS, ids=lambda d: f"{d.type}.v{d.v}")
def test_every_declared_bound_is_enforced_naming_its_field(declaration: Declaration) -> None:
    """What the contract file says a field accepts is what the generated validator accepts, field by field."""
    goods = _goods(declaration)
    schema = SCHEMAS[(declaration.type, declaration.v)]
    checked = 0
    for path, kind in _leaves(declaration.body):
        where = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".")
        good = next(body for body in goods if _reaches(body, path[:-1]))
        for value in _outside(kind):
            body = _copy(good)
            holder = body
            for step in path[:-1]:
                holder = holder[step]
            holder[path[-1]] = value
            with pytest.raises(SchemaError) as refused:
                schema(body)
            assert refused.value.where.startswith(where), (where, value, str(refused.value))
            checked += 1
    # the walk reached every leaf: till to change, through lines and tenders; action to reason
    assert checked >= (40 if declaration.type == "sale.completed" else 15)
