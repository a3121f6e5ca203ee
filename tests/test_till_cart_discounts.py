"""The cart's lines side on its own (actors.till.cart): line ids, variants, quantities, price overrides, line and
order discounts, tax on the discounted amount, the v3 body, and restarts; no actor, disk or network."""

from __future__ import annotations

import pytest

from actors.catalog.local import Offer
from actors.protocol import Rejected
from actors.till.cart import Cart, Discount, Line, discount, restore
from novapos import validators
from novapos.wire.schemas import SCHEMAS, SchemaError
from tests.test_till_cart_rules import BIG_NOTE, COFFEE, MILK, cart_of, offer, refused

TEE = Offer("TEE-M-RED", "Organic T-shirt", 1, 1999, "EUR", "standard", 200_000, True, (("size", "M"), ("colour", "red")))
sale_v3 = SCHEMAS[("sale.completed", 3)]


def checked_out(cart: Cart, drawer_session: str | None = None) -> dict:  # type: ignore[type-arg]
    assert cart.due().minor == 0 or cart.tender_cash(cart.due().minor) is None
    body = cart.checkout("till-1", "s-1", "alice", drawer_session)
    assert isinstance(body, dict)
    sale_v3(body)  # what the till commits, the wire accepts
    return body


def test_a_variant_line_shows_its_attributes_and_every_line_has_its_own_id() -> None:
    cart = cart_of((TEE, 1), (MILK, 2))
    tee, milk = cart.summary()["lines"]
    assert tee["attributes"] == [["size", "M"], ["colour", "red"]] and milk["attributes"] == []
    assert tee["line"] != milk["line"] and len(tee["line"]) == 12
    assert tee["list_price"] == tee["unit_price"] == {"minor": 1999, "currency": "EUR"}
    assert "override" not in tee and "discount" not in tee and tee["order_discount"]["minor"] == 0


def test_quantity_is_set_by_line_id_within_bounds_and_a_refusal_changes_nothing() -> None:
    cart = cart_of((COFFEE, 1), (MILK, 1))
    coffee = cart.lines[0].id
    assert cart.set_quantity(coffee, 4) is None and cart.lines[0].quantity == 4 and cart.total().minor == 4 * 499 + 129
    before = cart.summary()
    refused(cart.set_quantity(coffee, 0), "from 1 to 9999")
    refused(cart.set_quantity(coffee, 10_000), "from 1 to 9999")
    refused(cart.set_quantity("nope", 2), "no line 'nope'")
    assert cart.summary() == before


def test_a_scan_merges_only_into_a_plain_line_of_the_same_lock() -> None:
    cart = cart_of((COFFEE, 1))
    coffee = cart.lines[0].id
    assert cart.discount_line(coffee, Discount("percent", 5000, "damaged box")) is None
    assert cart.add(COFFEE, 1) is None  # the discounted coffee stays one; the new one is its own line
    assert [(line.quantity, line.discount is not None) for line in cart.lines] == [(1, True), (1, False)]
    assert cart.add(COFFEE, 2) is None and [line.quantity for line in cart.lines] == [1, 3]
    assert not isinstance(cart.override_price(cart.lines[1].id, 399, "price match", "manager"), Rejected)
    assert cart.add(COFFEE, 1) is None and [line.quantity for line in cart.lines] == [1, 3, 1]


def test_a_price_override_sells_at_the_new_price_and_keeps_the_list_price() -> None:
    cart = cart_of((COFFEE, 2))
    before = cart.override_price(cart.lines[0].id, 399, "price match", "manager")
    assert isinstance(before, Line) and before.unit_minor == 499  # the line as it was, for the audit
    [line] = checked_out(cart)["lines"]
    assert (line["list_price"]["minor"], line["unit_price"]["minor"], line["amount"]["minor"]) == (499, 399, 798)
    assert line["override"] == {"reason": "price match", "approver": "manager"}
    back = cart_of((COFFEE, 1))
    back.override_price(back.lines[0].id, 399, "typo", "manager")
    back.override_price(back.lines[0].id, 499, "typo undone", "manager")  # back to the list price: no override
    assert back.lines[0].override is None


def test_discounts_over_100_percent_or_over_the_line_are_refused_and_change_nothing() -> None:
    refused(discount("percent", 10_001, "x"), "1 to 10000 basis points")
    refused(discount("percent", 0, "x"), "1 to 10000")
    refused(discount("bogof", 1, "x"), "not one of: percent, amount")
    assert discount("percent", 10_000, "free") == Discount("percent", 10_000, "free")
    cart = cart_of((MILK, 2))
    milk = cart.lines[0].id
    before = cart.summary()
    refused(cart.discount_line(milk, Discount("amount", 259, "x")), "would be more than the line's 2.58 EUR")
    refused(cart.discount_order(Discount("amount", 259, "x")), "more than the cart's 2.58 EUR")
    assert cart.summary() == before
    assert cart.discount_line(milk, Discount("amount", 200, "dented")) is None
    refused(cart.set_quantity(milk, 1), "more than the line's 1.29 EUR")  # 2.00 off a single milk: no
    assert cart.lines[0].quantity == 2 and cart.total().minor == 58


def test_a_line_whose_price_x_quantity_a_till_cannot_take_is_refused_even_when_discounted() -> None:
    """A line's gross (and so its discount) must fit the wire's money, whatever the total after discounts."""
    cart = cart_of((COFFEE, 2))
    line = cart.lines[0].id
    assert cart.discount_line(line, Discount("percent", 9000, "clearance")) is None
    before = cart.summary()
    refused(cart.override_price(line, validators.MAX_MINOR, "typo", "manager"), "more than a till can take")
    assert cart.summary() == before
    checked_out(cart)


def test_tax_is_on_the_discounted_amount_included_or_added() -> None:
    """10 % off 3 x 4.99 = 14.97 is 1.50 (1.497 half up): 13.47 at 7 % included holds 0.88; excluded at 20 %,
    13.47 adds 2.69 (2.694)."""
    included = cart_of((COFFEE, 3))
    included.discount_line(included.lines[0].id, Discount("percent", 1000, "loyalty"))
    assert (included.total().minor, included.tax_total().minor) == (1347, 88)
    excluded = cart_of((offer("COF-250", "Coffee", 499, rate_ppm=200_000, included=False), 3))
    excluded.discount_line(excluded.lines[0].id, Discount("percent", 1000, "loyalty"))
    assert (excluded.total().minor, excluded.tax_total().minor) == (1347 + 269, 269)
    [line] = checked_out(excluded)["lines"]
    assert line["discount"] == {"kind": "percent", "value": 1000, "reason": "loyalty",
                                "amount": {"minor": 150, "currency": "EUR"}}


def test_the_order_discount_is_shared_by_the_largest_remainder_and_follows_the_cart() -> None:
    cart = cart_of((offer("A", "A", 300), 1), (offer("B", "B", 300), 1), (offer("C", "C", 300), 1))
    assert cart.discount_order(Discount("amount", 100, "complaint")) is None
    assert [line.order_share for line in cart.lines] == [34, 33, 33] and cart.total().minor == 800
    assert cart.set_quantity(cart.lines[2].id, 2) is None  # 300, 300, 600: 25, 25, 50
    assert [line.order_share for line in cart.lines] == [25, 25, 50]
    body = checked_out(cart)
    assert body["order_discount"]["amount"]["minor"] == 100
    assert [line["amount"]["minor"] for line in body["lines"]] == [275, 275, 550]
    percent = cart_of((COFFEE, 1), (MILK, 1))
    assert percent.discount_order(Discount("percent", 2500, "staff")) is None  # 25 % of 6.28 = 1.57
    assert sum(line.order_share for line in percent.lines) == 157
    refused(percent.discount_order(None) or percent.discount_order(None), "no order discount")


def test_removing_a_line_under_an_amount_order_discount_that_no_longer_fits_is_refused() -> None:
    cart = cart_of((COFFEE, 1), (MILK, 1))
    assert cart.discount_order(Discount("amount", 300, "complaint")) is None
    refused(cart.remove(cart.lines[0].id), "more than the cart's 1.29 EUR")
    assert len(cart.lines) == 2
    assert cart.remove(cart.lines[1].id) is None and cart.remove(cart.lines[0].id) is None
    assert cart.order_discount is None  # an empty cart has nothing to discount


def test_a_restart_keeps_ids_overrides_and_discounts_and_a_v2_saved_cart_still_restores() -> None:
    cart = cart_of((TEE, 2), (MILK, 1))
    tee = cart.lines[0].id
    cart.override_price(tee, 1500, "price match", "manager")
    cart.discount_line(tee, Discount("amount", 100, "loose thread"))
    cart.discount_order(Discount("percent", 1000, "staff"))
    restored, problems = restore(cart.to_saved(), "EUR", BIG_NOTE)
    assert problems == [] and restored.summary() == cart.summary()
    v2_line = {key: value for key, value in cart_of((MILK, 2)).to_saved()["lines"][0].items()
               if key in ("sku", "name", "quantity", "unit", "catalog_version", "tax_class", "rate_ppm", "included")}
    old, problems = restore({"id": cart.id, "tendered": [], "lines": [v2_line]}, "EUR", BIG_NOTE)
    assert problems == [] and [(line.sku, line.quantity, line.offer) for line in old.lines] == [("MLK-1L", 2, MILK)]
    assert len(old.lines[0].id) == 12 and checked_out(old)["lines"][0]["attributes"] == []


def test_a_saved_discount_that_does_not_fit_is_dropped_with_its_reason() -> None:
    cart = cart_of((MILK, 1))
    saved = cart.to_saved()
    saved["lines"][0]["discount"] = {"kind": "amount", "value": 500, "reason": "x"}
    saved["order_discount"] = {"kind": "percent", "value": 20_000, "reason": "x"}
    restored, problems = restore(saved, "EUR", BIG_NOTE)
    assert restored.lines == [] and restored.order_discount is None and len(problems) == 2
    assert "more than the line's 1.29 EUR" in problems[0] and "basis points" in problems[1]


def test_the_v3_body_carries_the_drawer_session_and_tender_ids() -> None:
    cart = cart_of((COFFEE, 1))
    assert cart.tender_cash(300) is None and cart.tender_cash(300) is None
    body = checked_out(cart, "0190a3c4-7e1f-7b2a-9c3d-4e5f60718293")
    assert body["drawer_session"] == "0190a3c4-7e1f-7b2a-9c3d-4e5f60718293"
    assert len({tender["id"] for tender in body["tenders"]}) == 2 and body["change"]["minor"] == 101
    assert "drawer_session" not in checked_out(cart_of((MILK, 1)))
    tampered = dict(body, lines=[dict(body["lines"][0], unit_price={"minor": 1, "currency": "EUR"})])
    with pytest.raises(SchemaError, match="carries its override"):
        sale_v3(tampered)
