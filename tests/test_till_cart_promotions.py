"""Promotions in the till's cart (actors.till.cart with actors.till.promoting and the real engine): re-evaluated at
every change, only on lines without a price override, the line discount after them and the order discount last,
the v5 body the wire accepts (v3 when nothing of v5 is there), coupons, and a saved cart that keeps what it was
priced at; no actor, disk or network."""

from __future__ import annotations

from dataclasses import replace

from actors.catalog.local import Offer
from actors.till.cart import Cart, Discount, restore
from actors.till.promoting import Coupon, Pricing, public_coupon, sale_version
from hub.loyalty.program import DEFAULT, from_json
from novapos import promotions as engine
from novapos.wire.schemas import SCHEMAS
from tests.test_till_cart_rules import BIG_NOTE, MILK, refused

sale_v3, sale_v5 = SCHEMAS[("sale.completed", 3)], SCHEMAS[("sale.completed", 5)]

CROISSANT = Offer("CRS-1", "Croissant", 1, 150, "EUR", "food", 70_000, True, category="bakery/viennoiserie")
BAGUETTE = Offer("BAG-1", "Baguette", 1, 120, "EUR", "food", 70_000, True, category="bakery/bread")
THREE_FOR_TWO = engine.Promotion(id="p-3for2", name="Croissants 3 for 2", version=1, currency="EUR",
                                 kind="buy_x_get_y", target=engine.Target(skus=frozenset({"CRS-1"})), buy=2, get=1,
                                 reward_bp=10_000, priority=10)
BAKERY_10 = engine.Promotion(id="p-bakery", name="Bakery 10% off", version=1, currency="EUR", kind="percent",
                             target=engine.Target(categories=frozenset({"bakery"})), value=1000, priority=5)
WELCOME = engine.Promotion(id="p-welcome", name="Welcome 1.00 off", version=1, currency="EUR", kind="amount",
                           applies_to="order", value=100, code_only=True, public_codes=frozenset({"hello"}))


def pricing(*promotions: engine.Promotion, version: int = 7) -> Pricing:
    return Pricing(version, engine.Rules(promotions), "store-001", "north", 1_767_225_600_000)


class Source:
    """The till's side of the cart's source: what the local copy holds now (a test changes it between changes)."""

    def __init__(self, *promotions: engine.Promotion) -> None:
        self.now = pricing(*promotions)
        self.asked = 0

    def __call__(self) -> Pricing:
        self.asked += 1
        return self.now


def promoted_cart(source: Source, *lines: tuple[Offer, int]) -> Cart:
    cart = Cart("EUR", BIG_NOTE, source=source)
    for offer, quantity in lines:
        assert cart.add(offer, quantity) is None
    return cart


def paid_body(cart: Cart) -> dict:  # type: ignore[type-arg]
    assert cart.due().minor == 0 or cart.tender_cash(cart.due().minor) is None
    body = cart.checkout("till-1", "s-1", "alice")
    assert isinstance(body, dict)
    return body


def test_buy_two_get_one_is_applied_at_the_third_scan_and_explained() -> None:
    source = Source(THREE_FOR_TWO)
    cart = promoted_cart(source, (CROISSANT, 2))
    assert cart.lines[0].promotions == () and cart.total().minor == 300
    assert cart.add(CROISSANT, 1) is None
    line = cart.lines[0]
    assert line.promotions == (("p-3for2", "Croissants 3 for 2", 150),) and cart.total().minor == 300
    summary = cart.summary()
    assert summary["lines"][0]["promotions"] == [{"promotion": "p-3for2", "name": "Croissants 3 for 2",
                                                  "amount": {"minor": 150, "currency": "EUR"}}]
    assert [(p["promotion"], p["amount"]["minor"]) for p in summary["promotions"]] == [("p-3for2", 150)]
    assert "2" in summary["promotions"][0]["explanation"] and summary["saved"]["minor"] == 150
    assert summary["promotions_version"] == 7


def test_every_change_evaluates_again_and_a_refused_change_keeps_the_evaluation() -> None:
    source = Source(THREE_FOR_TWO)
    cart = promoted_cart(source, (CROISSANT, 3))
    line = cart.lines[0].id
    assert cart.set_quantity(line, 2) is None and cart.lines[0].promotions == () and cart.total().minor == 300
    assert cart.set_quantity(line, 6) is None and cart.lines[0].promotions[0][2] == 300
    before, asked = cart.summary(), source.asked
    refused(cart.set_quantity(line, 0), "from 1 to 9999")
    assert cart.summary() == before and source.asked == asked  # refused before the engine was asked
    assert cart.add(BAGUETTE, 1) is None and cart.remove(cart.lines[1].id) is None
    assert cart.summary() == before


def test_a_promotion_that_changes_while_the_cart_is_open_takes_effect_at_its_next_change() -> None:
    source = Source(THREE_FOR_TWO)
    cart = promoted_cart(source, (CROISSANT, 3))
    source.now = pricing(BAKERY_10, version=8)  # the hub withdrew 3-for-2 and started bakery 10 %
    assert cart.lines[0].promotions[0][0] == "p-3for2" and cart.summary()["promotions_version"] == 7
    assert cart.add(BAGUETTE, 1) is None
    assert [line.promotions for line in cart.lines] == [(("p-bakery", "Bakery 10% off", 45),),
                                                        (("p-bakery", "Bakery 10% off", 12),)]
    assert paid_body(cart)["promotions_version"] == 8


def test_a_line_with_a_price_override_gets_no_promotion() -> None:
    cart = promoted_cart(Source(BAKERY_10), (CROISSANT, 1), (BAGUETTE, 1))
    assert cart.lines[1].promotions[0][2] == 12
    assert cart.override_price(cart.lines[1].id, 100, "day old", "manager") is not None
    assert cart.lines[1].promotions == () and cart.lines[1].amount.minor == 100
    assert cart.lines[0].promotions[0][2] == 15


def test_the_line_discount_is_of_what_the_promotions_left_and_the_order_discount_comes_last() -> None:
    cart = promoted_cart(Source(THREE_FOR_TWO), (CROISSANT, 3), (MILK, 1))
    croissants, milk = cart.lines
    assert cart.discount_line(croissants.id, Discount("percent", 1000, "regular")) is None
    assert croissants.promoted == 300 and croissants.discount_minor == 30 and croissants.net == 270
    assert cart.discount_order(Discount("amount", 100, "sorry")) is None
    assert [line.order_share for line in cart.lines] == [68, 32]  # 100 over 270 and 129 by the largest remainder
    body = paid_body(cart)
    sale_v5(body)
    assert sale_version(body, 3) == 5 and body["total"]["minor"] == 270 + 129 - 100
    assert body["lines"][0]["discount"]["amount"]["minor"] == 30
    assert cart.saved_minor() == 150 + 30 + 100


def test_a_scan_whose_promotion_would_leave_an_amount_discount_more_than_its_line_is_refused() -> None:
    cart = promoted_cart(Source(THREE_FOR_TWO), (CROISSANT, 2))
    assert cart.discount_line(cart.lines[0].id, Discount("amount", 250, "damaged")) is None
    before = cart.summary()
    refused(cart.add(CROISSANT, 1), "after its promotions")  # the free unit would be the discounted line's
    assert cart.summary() == before


def test_a_sale_without_anything_of_v5_stays_v3() -> None:
    cart = promoted_cart(Source(THREE_FOR_TWO), (CROISSANT, 2))
    body = paid_body(cart)
    sale_v3(body)
    assert "promotions_version" not in body and sale_version(body, 3) == 3
    customer = promoted_cart(Source(), (MILK, 1))
    customer.customer = "0190a3c4-7e1f-7b2a-9c3d-0000000000c1"
    body = paid_body(customer)
    sale_v5(body)
    assert body["customer"] == {"id": customer.customer} and body["promotions_version"] == 7


def test_a_code_only_promotion_applies_with_its_coupon_and_goes_with_it() -> None:
    source = Source(WELCOME, BAKERY_10)
    cart = promoted_cart(source, (CROISSANT, 2))
    assert [a.promotion for a in cart.priced.applied] == ["p-bakery"]
    found = public_coupon(source.now, "HELLO")
    assert found is not None and found.id == "p-welcome"
    coupon = Coupon("HELLO", found.id, "0190a3c4-7e1f-7b2a-9c3d-0000000000f2", True)
    assert cart.add_coupon(coupon) is None
    assert sorted(a.promotion for a in cart.priced.applied) == ["p-bakery", "p-welcome"]
    refused(cart.add_coupon(coupon), "already on this sale")
    assert cart.summary()["coupons"] == [{**coupon.to_wire(), "applied": True}]
    assert cart.remove_coupon("HELLO") == coupon and [a.promotion for a in cart.priced.applied] == ["p-bakery"]
    assert cart.add_coupon(coupon) is None
    body = paid_body(cart)
    sale_v5(body)
    assert body["coupons"] == [coupon.to_wire()]


def test_a_coupon_whose_promotion_gives_nothing_is_left_off_the_sale() -> None:
    cart = promoted_cart(Source(replace(WELCOME, min_spend_minor=10_000)), (CROISSANT, 1))
    coupon = Coupon("HELLO", "p-welcome", "0190a3c4-7e1f-7b2a-9c3d-0000000000f3", False)
    assert cart.add_coupon(coupon) is None and cart.summary()["coupons"][0]["applied"] is False
    assert cart.unapplied_coupons() == [coupon]
    body = paid_body(cart)
    sale_v5(body)
    assert "coupons" not in body


def test_evaluation_is_deterministic() -> None:
    carts = [promoted_cart(Source(BAKERY_10, THREE_FOR_TWO), (CROISSANT, 4), (BAGUETTE, 3)) for _ in range(2)]
    first, second = (cart.summary() for cart in carts)
    assert [line["promotions"] for line in first["lines"]] == [line["promotions"] for line in second["lines"]]
    assert first["total"] == second["total"]


def test_a_saved_cart_comes_back_priced_as_it_was_shown_until_its_next_change() -> None:
    source = Source(THREE_FOR_TWO, WELCOME)
    cart = promoted_cart(source, (CROISSANT, 3))
    cart.customer, cart.tier = "0190a3c4-7e1f-7b2a-9c3d-0000000000c1", "gold"
    assert cart.add_coupon(Coupon("HELLO", "p-welcome", "0190a3c4-7e1f-7b2a-9c3d-0000000000f4", True)) is None
    assert cart.tender_cash(100) is None  # paying: the lines are frozen
    shown = cart.summary()
    back, problems = restore(cart.to_saved(), "EUR", BIG_NOTE)
    assert problems == []
    back.source = Source()  # the copy has no promotions any more: a paying cart still sells as shown
    assert back.summary() == shown and back.customer == cart.customer and back.tier == "gold"
    body = paid_body(back)
    sale_v5(body)
    assert body["total"] == shown["total"] and body["promotions_version"] == 7


def test_a_saved_cart_keeps_any_tier_name_the_hub_accepts() -> None:
    """The hub names tiers with printable text ("Very Important", up to 40 characters: hub.loyalty.program); a saved
    cart's tier is checked with the same validator, so a restart never drops the customer of a valid tier, and a
    poisoned one is still refused with a sentence."""
    customer = "0190a3c4-7e1f-7b2a-9c3d-0000000000c1"
    for name in ("Very Important", "Or · Gold", "T" * 40):
        program = from_json("EUR", {**DEFAULT.to_json(), "tiers": [{"name": name, "min_spend_minor": 0,
                                                                     "multiplier_ppm": 1_000_000}]})
        cart = promoted_cart(Source(THREE_FOR_TWO), (CROISSANT, 1))
        cart.customer, cart.tier = customer, program.tiers[0].name
        back, problems = restore(cart.to_saved(), "EUR", BIG_NOTE)
        assert problems == [] and (back.customer, back.tier) == (customer, name)
    saved = cart.to_saved()
    saved["tier"] = "Gold\x1b[2J"
    back, problems = restore(saved, "EUR", BIG_NOTE)
    assert back.tier is None and "saved tier" in problems[0]


def test_a_saved_cart_with_poisoned_promotions_drops_them_with_a_sentence() -> None:
    cart = promoted_cart(Source(THREE_FOR_TWO), (CROISSANT, 3))
    saved = cart.to_saved()
    saved["lines"][0]["promotions"] = [["p-3for2", "Croissants\x1b[2J", 150]]
    saved["coupons"] = [{"code": "X", "promotion": "bad id!", "redemption": "r", "offline": False}]
    back, problems = restore(saved, "EUR", BIG_NOTE)
    assert back.lines == [] and back.coupons == [] and len(problems) == 2
    saved = cart.to_saved()
    saved["lines"][0]["promotions"] = [["p-3for2", "Croissants 3 for 2", 451]]  # more than the line
    back, problems = restore(saved, "EUR", BIG_NOTE)
    assert back.lines == [] and "more than the line" in problems[0]
