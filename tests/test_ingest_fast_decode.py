"""The hub's fast decode (hub.ingest.fast_decode) never disagrees with novapos.wire's decode: on valid
sales of both versions it gives the very same event, and on every change of one field of them (a
hostile value put in, or the field taken away) it either gives decode's event or leaves the verdict
to decode. A rule added to or changed in the wire schemas without following it here fails this test."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from bench.cart import discounted_v3_body, plain_v3
from bench.ingest import order
from hub.ingest import fast_decode
from novapos.pricing import line_tax
from novapos.validators import MAX_BIGINT, MAX_LINE_QUANTITY, MAX_MINOR, MAX_TEXT_LENGTH, MAX_TOKEN_LENGTH
from novapos.wire import schemas
from novapos.wire.envelope import MAX_TS_MS, MIN_TS_MS, Envelope, decode
from novapos.wire.ids import uuid7
from tests.events import sale_event, sale_v3_body, with_quantity

HOSTILE: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 9, 1.5, "", " ", "x", "EUR", "eur", "USD", "cash", "card", "a b", "a\x00b",
    "\u202e", "é", "x" * (MAX_TOKEN_LENGTH + 1), "x" * (MAX_TEXT_LENGTH + 1), " " + "x" * MAX_TEXT_LENGTH + " ",
    "x" * MAX_TOKEN_LENGTH, MAX_MINOR, MAX_MINOR + 1, MAX_LINE_QUANTITY, MAX_LINE_QUANTITY + 1, MAX_BIGINT,
    MAX_BIGINT + 1, 1_000_000, 1_000_001, MIN_TS_MS - 1, MAX_TS_MS + 1, b"\x00" * 16, b"\x00" * 15, [], {}, [{}],
    {"minor": 1, "currency": "EUR"}, {"minor": 0, "currency": "EUR"}, {"minor": 1, "currency": "USD"},
    {"minor": 1, "currency": "EUR", "x": 1}, {"minor": True, "currency": "EUR"},
]


def _valid() -> list[dict[str, Any]]:
    """Raw envelopes (msgpack maps) of valid sales: v1 and v2, tax included and not, quantities above one."""
    v2 = [order("store-001", seq) for seq in range(1, 7)]
    excluded = copy.deepcopy(order("store-002", 4))
    for line in excluded.body["lines"]:
        line["tax"]["included"] = False
        line["tax"]["amount"]["minor"] = line_tax(line["amount"]["minor"], line["tax"]["rate_ppm"], False)
    excluded.body["tax_total"]["minor"] = sum(line["tax"]["amount"]["minor"] for line in excluded.body["lines"])
    net = sum(line["amount"]["minor"] + line["tax"]["amount"]["minor"] for line in excluded.body["lines"])
    excluded.body["total"]["minor"] = net
    excluded.body["tenders"][0]["amount"]["minor"] = net + 7
    excluded.body["change"]["minor"] = 7
    one = sale_event(seq=3)
    three = dataclasses.replace(one, body=with_quantity(copy.deepcopy(one.body), 3))
    events = [*v2, excluded, one, three, plain_v3(v2[0]), plain_v3(excluded, drawer_session="ds-1"),
              _v3(sale_v3_body()), _v3(discounted_v3_body(excluded=True))]
    for event in events:
        decode(event.encode())  # each is valid to begin with
    return [msgpack.unpackb(event.encode(), raw=False) for event in events]


def _v3(body: dict[str, Any]) -> Envelope:
    return Envelope(id=uuid7(), type="sale.completed", v=3, tenant="demo", store="store-001", seq=1,
                    ts=1_700_000_000_000, body=body)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key or index path inside a map/list structure."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield (*path, key)
        yield from _paths(inner, (*path, key))


def _changed(raw: dict[str, Any], path: tuple[Any, ...], value: Any, remove: bool) -> bytes:
    changed = copy.deepcopy(raw)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return bytes(msgpack.packb(changed))


def _agree(data: bytes) -> bool:
    """Whether the fast path gave decode's event or left it to decode; True also if decode refuses it."""
    fast = fast_decode.decode(data)
    try:
        slow = decode(data)
    except Exception:
        return fast is None
    return fast is None or fast == slow


def test_valid_sales_of_every_version_take_the_fast_path_to_the_same_event() -> None:
    for raw in _valid():
        data = bytes(msgpack.packb(raw))
        assert fast_decode.decode(data) == decode(data) is not None


@pytest.mark.parametrize("which", range(len(_valid())))
def test_no_change_of_one_field_makes_the_fast_path_disagree_with_decode(which: int) -> None:
    raw = _valid()[which]
    disagreements = []
    for path in _paths(raw):
        for value in [*HOSTILE, None]:
            data = _changed(raw, path, value, remove=value is None and path[-1] != 0)
            if not _agree(data):
                disagreements.append((path, value))
    assert disagreements == []


def test_a_replaced_schema_turns_the_fast_path_off_for_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    data = order("store-001", 1).encode()
    monkeypatch.setitem(schemas.SCHEMAS, ("sale.completed", 2), lambda body: None)
    assert fast_decode.decode(data) is None
    assert fast_decode.decode(b"\xc1") is None and fast_decode.decode(msgpack.packb([1])) is None


@pytest.mark.parametrize("quantity", [0, 1, MAX_LINE_QUANTITY, MAX_LINE_QUANTITY + 1])
def test_a_sale_whose_totals_add_up_agrees_at_the_quantity_bounds(quantity: int) -> None:
    """Changes that keep the totals consistent, which one field at a time cannot make."""
    event = sale_event()
    data = dataclasses.replace(event, body=with_quantity(copy.deepcopy(event.body), quantity)).encode()
    assert _agree(data)
    assert (fast_decode.decode(data) is not None) == (1 <= quantity <= MAX_LINE_QUANTITY)
