"""A return of a sale another store made, as the hub answered it (actors.returns.lookup.checked_sale), whose points
tender says fewer minor units than points (a point worth less than one minor unit: not a sale a till makes, but an
answer the lookup's checks let through): the till refunds that part in cash instead of dividing by a point value of
zero and restarting."""

from __future__ import annotations

from actors.returns.lookup import checked_sale
from actors.till.returning import ReturnCart
from novapos.config.returns import ReturnsPolicy

NOW = 1_800_000_000_000
CUSTOMER = "0190a3c4-7e1f-7b2a-9c3d-0000000000a1"


def _hub_sale(points_amount: int, points: int) -> dict[str, object]:
    return checked_sale({
        "order": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d", "store": "store-002", "ts": NOW, "till": "till-1",
        "currency": "EUR", "customer": CUSTOMER,
        "tenders": [{"method": "points", "amount": points_amount, "points": points, "reference": None},
                    {"method": "cash", "amount": 1000 - points_amount, "reference": None}],
        "lines": [{"line_no": 1, "sku": "COF-250", "name": "Coffee", "quantity": 2, "unit_minor": 500, "amount": 1000,
                   "tax_class": "std", "rate_ppm": 200_000, "included": True, "returnable": 2}]})


def _returned(points_amount: int, points: int) -> ReturnCart:
    cart = ReturnCart.for_sale(_hub_sale(points_amount, points), "EUR", 50_000, ReturnsPolicy(), NOW, None)
    assert isinstance(cart, ReturnCart)
    assert cart.take_line(1, 1, "resaleable") is None
    return cart


def test_a_points_tender_worth_less_than_its_points_refunds_in_cash_not_a_crash() -> None:
    cart = _returned(3, 5)  # 5 points paid 0.03: a point worth 0 whole minor units
    assert cart.points_part() == (0, 0)
    summary = cart.summary()
    assert summary["refund"]["minor"] == 500 and summary["refund_points"]["minor"] == 0


def test_a_points_tender_refunds_whole_points_at_their_value_in_the_sale() -> None:
    cart = _returned(300, 150)  # a point was worth 0.02
    assert cart.points_part() == (150, 300)
