"""The cart's rules on their own (actors.till.cart): no actor, no disk, no network."""

from __future__ import annotations

import pytest

from actors.protocol import Rejected
from actors.till.cart import SAVING_MESSAGE, Cart, Stage, restore
from novapos import validators
from novapos.config import Product
from novapos.money import Money
from novapos.wire.schemas import SCHEMAS

MILK = Product("MLK-1L", "5000112637922", "Whole milk 1 l", Money(129, "EUR"))
COFFEE = Product("COF-250", "4006381333931", "Ground coffee 250 g", Money(499, "EUR"))
CATALOG = {product.sku: product for product in (MILK, COFFEE)}
BIG_NOTE = 50000  # 500 EUR


def cart_of(*lines: tuple[Product, int], max_change: int = BIG_NOTE) -> Cart:
    cart = Cart("EUR", max_change)
    for product, quantity in lines:
        assert cart.add(product, quantity) is None
    return cart


def refused(answer: Rejected | None, says: str) -> None:
    assert isinstance(answer, Rejected), answer
    assert says in answer.message, answer.message


def test_twelve_huge_tenders_on_a_milk_are_refused_and_change_stays_a_sensible_amount() -> None:
    """Issue 6: twelve tenders of 10^9 on a 1.29 EUR cart completed with change 119,999,998.71 EUR."""
    cart = cart_of((MILK, 1))
    for _ in range(12):
        refused(cart.tender_cash(10**9), "more than the 500.00 EUR a till gives back")
    assert cart.tendered == [] and cart.due() == Money(129, "EUR")
    assert cart.tender_cash(100) is None and cart.due() == Money(29, "EUR")
    assert cart.tender_cash(50) is None
    assert (cart.due(), cart.change()) == (Money(0, "EUR"), Money(21, "EUR"))
    refused(cart.tender_cash(10**9), "nothing is due (change 0.21 EUR): complete the sale")
    refused(cart.tender_cash(1), "nothing is due")  # even a cent: the cart is paid
    assert cart.tendered == [100, 50]


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
    SCHEMAS[("sale.completed", 1)](body)
    assert body["change"] == {"minor": 873, "currency": "EUR"} and cart.stage is Stage.SAVING


def test_nothing_changes_while_the_sale_is_being_saved() -> None:
    cart = cart_of((MILK, 1))
    assert cart.tender_cash(129) is None and isinstance(cart.checkout("till-1", "s", "alice"), dict)
    before = cart.summary()
    for attempt in (cart.add(MILK, 1), cart.remove("MLK-1L"), cart.tender_cash(100), cart.give_cash_back(),
                    cart.may_void()):
        refused(attempt, SAVING_MESSAGE)
    assert cart.summary() == before
    cart.saving_refused()  # the outbox wrote nothing: the cashier may correct the cart
    assert cart.give_cash_back() is None and cart.stage is Stage.SCANNING


def test_cash_taken_freezes_the_lines_until_it_is_given_back() -> None:
    cart = cart_of((MILK, 1))
    assert cart.tender_cash(200) is None and cart.stage is Stage.PAYING
    refused(cart.add(COFFEE, 1), "void the tenders")
    refused(cart.remove("MLK-1L"), "void the tenders")
    assert cart.give_cash_back() is None and cart.remove("MLK-1L") is None and cart.is_empty()
    refused(cart.give_cash_back(), "no tender has been taken")
    refused(cart.may_void(), "already empty")


def test_a_line_and_a_cart_stay_within_the_shared_bounds() -> None:
    cart = cart_of((MILK, validators.MAX_LINE_QUANTITY))
    refused(cart.add(MILK, 1), f"quantity would exceed {validators.MAX_LINE_QUANTITY}")
    gold = Product("GOLD", "1", "Gold bar", Money(validators.MAX_MINOR // 2, "EUR"))
    huge = cart_of((gold, 2))
    refused(huge.add(MILK, 1), "more than a till can take")
    assert huge.total().minor == validators.MAX_MINOR


def test_a_poisoned_saved_cart_keeps_only_what_passes_the_validators() -> None:
    saved = {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "tendered": [100, -5, "x", 10**15, True, 100, 10**9],
             "lines": [{"sku": "MLK-1L", "quantity": 1}, {"sku": "MLK\x00", "quantity": 1},
                       {"sku": "sur\ud800rogate", "quantity": 1}, {"sku": "GONE-1", "quantity": 1},
                       {"sku": "COF-250", "quantity": 0}, {"sku": "COF-250", "quantity": 1.5}, "junk",
                       {"sku": "MLK-1L", "quantity": 1}]}
    cart, problems = restore(saved, "EUR", BIG_NOTE, CATALOG)
    assert [(line.product.sku, line.quantity) for line in cart.lines] == [("MLK-1L", 2)]
    assert cart.tendered == [100, 100]  # the rest was bad, or would pay a cart already paid (10^9)
    assert len(problems) == 6 + 5
    assert "GONE-1, which is no longer in the catalog" in "\n".join(problems)
    assert all("\x00" not in problem and "\ud800" not in problem for problem in problems)
    for bad_id in ("c2", None, "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B\x00"):
        with pytest.raises(validators.Invalid):
            restore({**saved, "id": bad_id}, "EUR", BIG_NOTE, CATALOG)


TENDER = "7d0c9a52-3f1e-4b6a-9c2d-5e8f1a2b3c4d"


def test_a_tender_sent_again_with_its_id_takes_the_cash_once() -> None:
    """A resent Take cash (the same tender id) changes nothing, even once nothing is due or the sale is saving."""
    cart = cart_of((COFFEE, 1))
    assert cart.tender_cash(200, TENDER) is None
    assert cart.tender_cash(200, TENDER) is None and cart.tendered == [200]
    assert cart.tender_cash(299, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") is None and cart.due() == Money(0, "EUR")
    assert cart.tender_cash(299, TENDER) is None and cart.tendered == [200, 299]
    assert isinstance(cart.checkout("till-1", "s", "alice"), dict)
    assert cart.tender_cash(200, TENDER) is None and cart.tendered == [200, 299]
    saved, _ = restore(cart.to_saved(), "EUR", BIG_NOTE, CATALOG)
    assert saved.took(TENDER) and not saved.took(None)  # a restarted till still knows the tender


def test_a_free_cart_completes_with_no_tender_and_the_wire_schema_accepts_it() -> None:
    """A free bag or a gift: total 0, nothing is due, so nothing is tendered."""
    bag = Product("BAG-FREE", "2000000000015", "Paper bag", Money(0, "EUR"))
    cart = cart_of((bag, 2))
    refused(cart.tender_cash(100), "nothing is due")
    body = cart.checkout("till-1", "s", "alice")
    assert isinstance(body, dict) and body["tenders"] == [] and body["change"] == {"minor": 0, "currency": "EUR"}
    SCHEMAS[("sale.completed", 1)](body)
