"""The catalog's fast decode path refuses exactly what the validators refuse, with their sentences, and
accepts the rest unchanged: every hostile value, in every field of an item, goes through both ways
(novapos.wire.catalog.is_well_formed_item and the row actors.catalog.decoding makes, against
novapos.wire.catalog.checked_item, the validators field by field)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest

from actors.catalog.decoding import decode_one
from actors.catalog.local import item_row
from novapos import validators
from novapos.validators import Invalid
from novapos.wire.catalog import MAX_ATTRIBUTES, MAX_BARCODES, checked_item, decode, decode_body, is_well_formed_item

HOSTILE: list[Any] = [
    "bad\x00name", "\x1b[2Jcleared", "alice\n2026 INFO forged", "a\x7fb\x85c", "a\u2028b", "a\u202eb",
    "\u2067evil\u2069 alice", "ad\u200bmin", "sur\ud800rogate", "x" * 10_000, "x" * 201, "x" * 65, "x" * 129,
    "", "   ", " padded ", "tab\there", "trailing\n", "\u00a0nbsp", "caf\u00e9", "\u0645\u0631\u062d\u0628\u0627",
    "\U0001f600", "a\u200db", "SKU-1", "ok name", "x" * 200, "x" * 64, "x" * 128, "dot.dot", "slash/x", "*", ">",
    9 ** 50, 2**63, 2**63 - 1, 10**12, 10**12 + 1, -1, 0, 1, 1.5, float("nan"), True, False, None,
    ["alice"], {"minor": 1}, b"bytes", [], [[]], [["a", "b", "c"]], [["size", "M"]], [["size"]], [[1, 2]],
    ["tenant", "", 0, 1], [["tenant", "", 0, 1]], [["tenant", "x", 0, 1]], [["region", "", 0, 1]],
    [["store", "s-1", -1, 1]], [["store", "s-1", 0, 10**12 + 1]], [["store", "s-1", 0, True]],
    [["galaxy", "s-1", 0, 1]], [["tenant", "", 0]], [["tenant", "", 0, 1.0]], [["tenant", None, 0, 1]],
    [["region", "north\n", 0, 1]], [("tenant", "", 0, 1)],
    [["size", "M"]] * (MAX_ATTRIBUTES + 1), ["0" * 13] * (MAX_BARCODES + 1), ["0" * 13, "bad code"],
    "food/dairy", "food//dairy", "/food", "food/", "a/b/c/d/e/f/g/h", "a/b/c/d/e/f/g/h/i", "/".join(["x" * 60] * 4),
    "food/da iry", "food/é",
]
FIELDS = ("sku", "product", "name", "attributes", "tax_class", "barcodes", "prices", "active", "version", "category")


def good_body() -> dict[str, Any]:
    return {"sku": "SKU-1", "product": "P-1", "name": "Ground coffee 250 g",
            "attributes": [["size", "M"], ["colour", "rouge fonc\u00e9"]], "tax_class": "food",
            "barcodes": ["4006381333931", "0" * 128], "active": True, "version": 7, "category": "food/dairy/cheese",
            "prices": [["tenant", "", 0, 499], ["region", "north", 1_700_000_000_000, 459], ["store", "s-1", 0, 0]]}


def bodies() -> Iterator[dict[str, Any]]:
    """The good body, then each field of it replaced by each hostile value, or missing; and the hostile
    values inside its lists."""
    yield good_body()
    for field in FIELDS:
        missing = good_body()
        del missing[field]
        yield missing
        for value in HOSTILE:
            body = good_body()
            body[field] = copy.deepcopy(value)
            yield body
            if field in ("attributes", "barcodes", "prices"):  # the value as the list's second element
                nested = good_body()
                nested[field] = [*nested[field][:1], copy.deepcopy(value)]
                yield nested
    for index in range(4):
        for value in HOSTILE:
            body = good_body()
            body["prices"][1][index] = copy.deepcopy(value)
            yield body
    for index in range(2):
        for value in HOSTILE:
            body = good_body()
            body["attributes"][0][index] = copy.deepcopy(value)
            yield body


def texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list | tuple):
        for inner in value.values() if isinstance(value, dict) else value:
            yield from texts(inner)


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """What call(*args, **kwargs) returned, or ("refused", its sentence)."""
    try:
        return call(*args, **kwargs)
    except Invalid as exc:
        return ("refused", str(exc))


def test_is_text_says_yes_exactly_when_text_accepts_the_value_as_it_is() -> None:
    for value in HOSTILE:
        accepted = outcome(validators.text, "f", value)
        assert validators.is_text(value) == (isinstance(value, str) and accepted == value), value
    # Accepted only after trimming: the fast check declines, the full check trims.
    assert not validators.is_text(" padded ") and validators.text("f", " padded ") == "padded"


def test_a_hostile_item_is_refused_with_the_validators_sentence_and_a_good_one_decodes_the_same_both_ways() -> None:
    refused = accepted = 0
    for body in bodies():
        reference = outcome(checked_item, body)
        assert outcome(decode_body, "item", body) == reference, body
        good = not (isinstance(reference, tuple) and reference[0] == "refused")
        refused, accepted = refused + (not good), accepted + good
        # The fast check declines only what the validators refuse, or accept once trimmed (they trim the
        # texts: the name and the attributes).
        trimmed = any(text != text.strip() for text in texts([body.get("name"), body.get("attributes")]))
        assert is_well_formed_item(body) == (good and not trimmed), body
        try:
            data = msgpack.packb(body)
        except (UnicodeEncodeError, OverflowError):  # a lone surrogate, past 64 bits: msgpack cannot carry it
            continue
        carried = outcome(checked_item, msgpack.unpackb(data))  # tuples travel as lists
        assert outcome(decode, "item", data) == carried, body
        row = decode_one(f"catalog.demo.item.{body.get('sku')}", data)
        assert row == (carried[1] if isinstance(carried, tuple) else item_row(carried)), (body, row)
    assert refused > 300 and accepted >= 10, (refused, accepted)


def test_an_item_on_another_subject_is_refused_on_the_fast_path_too() -> None:
    data = msgpack.packb(good_body())
    assert decode_one("catalog.demo.item.SKU-2", data) == "item SKU-1 came on another subject"
    assert decode_one("catalog.demo.item.SKU-1.extra", data) == "item SKU-1 came on another subject"
    assert isinstance(decode_one("catalog.demo.item.SKU-1", data), tuple)


@pytest.mark.parametrize("data", [b"", b"\xc1", msgpack.packb(["a list"]), msgpack.packb({1: "int key"})])
def test_what_is_not_a_map_is_refused_with_a_sentence(data: bytes) -> None:
    reason = decode_one("catalog.demo.item.SKU-1", data)
    assert isinstance(reason, str) and reason.startswith("catalog message "), reason
