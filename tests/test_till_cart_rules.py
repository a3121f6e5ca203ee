"""The cart's rules on their own (actors.till.cart): no actor, no disk, no network."""

from __future__ import annotations

import pytest

from actors.catalog.local import Offer
from actors.protocol import Rejected
from actors.till.cart import SAVING_MESSAGE, Cart, Stage, restore
from novapos import validators
from novapos.money import Money
from novapos.wire.schemas import SCHEMAS


def offer(sku: str, name: str, minor: int, *, version: int = 1, rate_ppm: int = 70_000, included: bool = True) -> Offer:
    return Offer(sku, name, version, minor, "EUR", "food", rate_ppm, included)


MILK = offer("MLK-1L", "Whole milk 1 l", 129)
COFFEE = offer("COF-250", "Ground coffee 250 g", 499)
BIG_NOTE = 50000  # 500 EUR


def cart_of(*lines: tuple[Offer, int], max_change: int = BIG_NOTE) -> Cart:
    cart = Cart("EUR", max_change)
    for product, quantity in lines:
        assert cart.add(product, quantity) is None
    return cart


def line_of(cart: Cart, sku: str) -> str:
    """The id of the cart's (last) line of `sku`."""
    return [line.id for line in cart.lines if line.sku == sku][-1]


def refused(answer: Rejected | None, says: str) -> None:
    assert isinstance(answer, Rejected), answer
    assert says in answer.message, answer.message


def cash(cart: Cart) -> list[int]:
    """The amounts of the tenders that paid, oldest first."""
    return [tender.amount for tender in cart.tenders.approved()]


def test_twelve_huge_tenders_on_a_milk_are_refused_and_change_stays_a_sensible_amount() -> None:
    """Issue 6: twelve tenders of 10^9 on a 1.29 EUR cart completed with change 119,999,998.71 EUR."""
    cart = cart_of((MILK, 1))
    for _ in range(12):
        refused(cart.tender_cash(10**9), "more than the 500.00 EUR a till gives back")
    assert cash(cart) == [] and cart.due() == Money(129, "EUR")
    assert cart.tender_cash(100) is None and cart.due() == Money(29, "EUR")
    assert cart.tender_cash(50) is None
    assert (cart.due(), cart.change()) == (Money(0, "EUR"), Money(21, "EUR"))
    refused(cart.tender_cash(10**9), "nothing is due (change 0.21 EUR): complete the sale")
    refused(cart.tender_cash(1), "nothing is due")  # even a cent: the cart is paid
    assert cash(cart) == [100, 50]


def test_the_change_cap_is_the_configured_one_to_the_cent() -> None:
    cart = cart_of((COFFEE, 1), max_change=1000)
    refused(cart.tender_cash(499 + 1001), "10.01 EUR change, more than the 10.00 EUR")
    assert cart.tender_cash(499 + 1000) is None and cart.change() == Money(1000, "EUR")
    exact_only = cart_of((MILK, 1), max_change=0)
    refused(exact_only.tender_cash(130), "0.01 EUR change")
    assert exact_only.tender_cash(129) is None


def test_a_paid_cart_checks_out_into_a_sale_the_wire_schema_accepts() -> None:
    cart = cart_of((COFFEE, 2), (MILK, 1))
    refused(cart.checkout("till-1", "s", "alice"), "11.27 EUR is still due")
    assert cart.tender_cash(2000) is None
    body = cart.checkout("till-1", "s", "alice")
    assert isinstance(body, dict)
    SCHEMAS[("sale.completed", 3)](body)
    assert body["change"] == {"minor": 873, "currency": "EUR"} and cart.stage is Stage.SAVING


def test_nothing_changes_while_the_sale_is_being_saved() -> None:
    cart = cart_of((MILK, 1))
    assert cart.tender_cash(129) is None and isinstance(cart.checkout("till-1", "s", "alice"), dict)
    before = cart.summary()
    for attempt in (cart.add(MILK, 1), cart.remove(line_of(cart, "MLK-1L")), cart.tender_cash(100), cart.void_tenders(),
                    cart.may_void()):
        refused(attempt, SAVING_MESSAGE)
    assert cart.summary() == before
    cart.saving_refused()  # the outbox wrote nothing: the cashier may correct the cart
    assert cart.void_tenders() == [] and cart.stage is Stage.SCANNING


def test_cash_taken_freezes_the_lines_until_it_is_given_back() -> None:
    cart = cart_of((MILK, 1))
    assert cart.tender_cash(200) is None and cart.stage is Stage.PAYING
    refused(cart.add(COFFEE, 1), "void the tenders")
    refused(cart.remove(line_of(cart, "MLK-1L")), "void the tenders")
    assert cart.void_tenders() == [] and cart.remove(line_of(cart, "MLK-1L")) is None and cart.is_empty()
    refused(cart.void_tenders(), "no tender has been taken")
    refused(cart.may_void(), "already empty")


def test_a_line_and_a_cart_stay_within_the_shared_bounds() -> None:
    cart = cart_of((MILK, validators.MAX_LINE_QUANTITY))
    refused(cart.add(MILK, 1), f"quantity would exceed {validators.MAX_LINE_QUANTITY}")
    gold = offer("GOLD", "Gold bar", validators.MAX_MINOR // 2)
    huge = cart_of((gold, 2))
    refused(huge.add(MILK, 1), "more than a till can take")
    assert huge.total().minor == validators.MAX_MINOR


def test_a_poisoned_saved_cart_keeps_only_what_passes_the_validators() -> None:
    milk = cart_of((MILK, 1)).to_saved()["lines"][0]
    saved = {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "tendered": [100, -5, "x", 10**15, True, 100, 10**9],
             "lines": [milk, {**milk, "sku": "MLK\x00"}, {**milk, "name": "sur\ud800rogate"},
                       {"sku": "OLD-1", "quantity": 1}, {**milk, "quantity": 0}, {**milk, "unit": 1.5},
                       {**milk, "rate_ppm": 10**7}, {**milk, "included": "yes"}, "junk", milk]}
    cart, problems = restore(saved, "EUR", BIG_NOTE)
    assert [(line.sku, line.quantity, line.offer) for line in cart.lines] == [("MLK-1L", 1, MILK)]
    assert cash(cart) == [100, 100]  # the rest was bad, or would pay a cart already paid (10^9)
    assert len(problems) == 8 + 1 + 5  # 8 malformed lines, the last one a copy of the first's id: not sold twice
    assert "saved line 9 line: the id of an earlier line" in "\n".join(problems)
    assert "saved line 3 included must be true or false (a line saved before price locks" in "\n".join(problems)
    assert all("\x00" not in problem and "\ud800" not in problem for problem in problems)
    for bad_id in ("c2", None, "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B\x00"):
        with pytest.raises(validators.Invalid):
            restore({**saved, "id": bad_id}, "EUR", BIG_NOTE)


TENDER = "7d0c9a52-3f1e-4b6a-9c2d-5e8f1a2b3c4d"


def test_a_tender_sent_again_with_its_id_takes_the_cash_once() -> None:
    """A resent Take cash (the same tender id) changes nothing, even once nothing is due or the sale is saving."""
    cart = cart_of((COFFEE, 1))
    assert cart.tender_cash(200, TENDER) is None
    assert cart.tender_cash(200, TENDER) is None and cash(cart) == [200]
    assert cart.tender_cash(299, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") is None and cart.due() == Money(0, "EUR")
    assert cart.tender_cash(299, TENDER) is None and cash(cart) == [200, 299]
    assert isinstance(cart.checkout("till-1", "s", "alice"), dict)
    assert cart.tender_cash(200, TENDER) is None and cash(cart) == [200, 299]
    saved, _ = restore(cart.to_saved(), "EUR", BIG_NOTE)
    assert saved.took(TENDER) and not saved.took(None)  # a restarted till still knows the tender


def test_a_free_cart_completes_with_no_tender_and_the_wire_schema_accepts_it() -> None:
    """A free bag or a gift: total 0, nothing is due, so nothing is tendered."""
    bag = offer("BAG-FREE", "Paper bag", 0)
    cart = cart_of((bag, 2))
    refused(cart.tender_cash(100), "nothing is due")
    body = cart.checkout("till-1", "s", "alice")
    assert isinstance(body, dict) and body["tenders"] == [] and body["change"] == {"minor": 0, "currency": "EUR"}
    SCHEMAS[("sale.completed", 3)](body)


def test_tax_is_shown_inside_prices_that_include_it_and_added_to_prices_that_do_not() -> None:
    """pricing's one rule per line: 3 x 4.99 at 7 % included holds 0.98 of tax (14.97 - 13.99,
    rounded half up), the total unchanged; excluded, 3 x 4.99 at 20 % adds 2.99 (2.994), and 1.29 at
    20 % adds 0.26 (0.258)."""
    included = cart_of((COFFEE, 3))
    assert (included.total().minor, included.tax_total().minor) == (1497, 98)
    excluded = cart_of((offer("COF-250", "Coffee", 499, rate_ppm=200_000, included=False), 3),
                       (offer("MLK-1L", "Milk", 129, rate_ppm=200_000, included=False), 1))
    assert (excluded.total().minor, excluded.tax_total().minor) == (1497 + 299 + 129 + 26, 299 + 26)
    for cart in (included, excluded):
        assert cart.tender_cash(cart.due().minor) is None
        body = cart.checkout("till-1", "s", "alice")
        assert isinstance(body, dict)
        SCHEMAS[("sale.completed", 3)](body)
        assert body["tax_total"]["minor"] == cart.tax_total().minor
    lines = excluded.summary()["lines"]
    assert [line["tax"] for line in lines] == [
        {"class": "food", "rate_ppm": 200_000, "included": False, "amount": {"minor": 299, "currency": "EUR"}},
        {"class": "food", "rate_ppm": 200_000, "included": False, "amount": {"minor": 26, "currency": "EUR"}}]


def test_a_second_scan_after_a_price_change_opens_a_new_line_and_the_old_one_keeps_its_lock() -> None:
    cart = cart_of((COFFEE, 1))
    cart.add(offer("COF-250", "Ground coffee 250 g", 499, version=2), 1)  # same price, newer version: same line
    dearer = offer("COF-250", "Ground coffee 250 g", 549, version=3)
    assert cart.add(dearer, 1) is None
    assert [(line.quantity, line.offer.unit_minor, line.offer.catalog_version) for line in cart.lines] == [
        (2, 499, 1), (1, 549, 3)]
    assert cart.remove(line_of(cart, "COF-250")) is None  # by its id: the dearer line
    assert [(line.quantity, line.offer.unit_minor) for line in cart.lines] == [(2, 499)]
    restored, problems = restore(cart_of((COFFEE, 1), (dearer, 1)).to_saved(), "EUR", BIG_NOTE)
    assert problems == [] and [line.offer for line in restored.lines] == [COFFEE, dearer]
    refused(cart.add(Offer("X", "Dollar thing", 1, 100, "USD", "food", 0, True), 1), "priced in USD")
