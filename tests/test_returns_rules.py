"""The return rules without I/O: pro-rata refunds sum to the line exactly, the return cart applies the store's
policy (conditions, restocking fee, refund target), return.completed v1's cross-field rules, the [returns] table."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from actors.catalog.local import Offer
from actors.protocol import Rejected
from actors.till.returning import ReturnCart
from novapos.config import ConfigError
from novapos.config.returns import ReturnsPolicy, load_returns
from novapos.pricing import pro_rata
from novapos.wire.contract import SchemaError
from novapos.wire.schemas import return_completed_v1
from tests.test_contracts import RETURN_BODY

NOW = 1_800_000_000_000


@pytest.mark.parametrize(("amount", "quantity"), [(1000, 3), (999, 7), (1, 3), (0, 2), (12345, 1), (10**12 + 1, 9999)])
def test_every_way_of_returning_a_line_sums_to_its_amount(amount: int, quantity: int) -> None:
    for splits in ([1] * min(quantity, 50), [quantity], [quantity // 2, quantity - quantity // 2]):
        if sum(splits) != quantity or 0 in splits:
            continue
        already, refunds = 0, []
        for units in splits:
            refunds.append(pro_rata(amount, quantity, already, units))
            already += units
        assert sum(refunds) == amount
    if quantity >= 2:  # one at a time or both at once: the same money for the same units
        assert pro_rata(amount, quantity, 0, 1) + pro_rata(amount, quantity, 1, 1) == pro_rata(amount, quantity, 0, 2)


def test_pro_rata_refuses_more_than_the_line() -> None:
    for args in ((100, 2, 1, 2), (100, 2, -1, 1), (100, 0, 0, 0)):
        with pytest.raises(ValueError):
            pro_rata(*args)


def _sale(**line: Any) -> dict[str, Any]:
    return {"order": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d", "store": "store-001", "ts": NOW, "till": "till-1",
            "currency": "EUR", "tenders": [{"method": "cash", "amount": 1000, "reference": None}],
            "lines": [{"line_no": 1, "sku": "COF-250", "name": "Coffee", "quantity": 3, "unit_minor": 334,
                       "amount": 1000, "tax_class": "std", "rate_ppm": 200_000, "included": True, "returnable": 3,
                       **line}]}


def _cart(policy: ReturnsPolicy | None = None, **line: Any) -> ReturnCart:
    cart = ReturnCart.for_sale(_sale(**line), "EUR", 50_000, policy or ReturnsPolicy(), NOW, None)
    assert isinstance(cart, ReturnCart)
    return cart


def test_the_policy_sets_the_fee_and_the_conditions_and_the_refund_target() -> None:
    policy = ReturnsPolicy(conditions=("resaleable",), restocking_fee_bp={"resaleable": 1500, "damaged": 0})
    cart = _cart(policy)
    refused = cart.take_line(1, 1, "damaged")
    assert isinstance(refused, Rejected) and "does not take items back damaged" in refused.message
    assert cart.take_line(1, 2, "resaleable") is None
    assert cart.returned_total() == 667 and cart.fee() == 100 and cart.refund() == 567  # 15 % of 6.67, half up
    top, bottom = cart.screen()  # the customer display, 20 columns
    assert top == "Return: 2 items" and bottom.startswith("REFUND") and bottom.endswith("5.67") and len(bottom) == 20
    card = _sale()
    card["tenders"] = [{"method": "card", "amount": 1000, "reference": "PAY1"}]
    by_card = ReturnCart.for_sale(card, "EUR", 50_000, ReturnsPolicy(), NOW, None)
    assert isinstance(by_card, ReturnCart) and by_card.refund_method() == ("card", "PAY1")
    cash_only = ReturnCart.for_sale(card, "EUR", 50_000, ReturnsPolicy(refund_to="cash"), NOW, None)
    assert isinstance(cash_only, ReturnCart) and cash_only.refund_method() == ("cash", None)


def test_a_cart_never_takes_more_than_is_returnable_and_prices_tax_added_lines() -> None:
    cart = _cart(returnable=1, included=False)
    refused = cart.take_line(1, 2, "resaleable")
    assert isinstance(refused, Rejected) and "only 1 of 3 may still be returned" in refused.message
    assert cart.take_line(1, 1, "resaleable") is None
    # the first two units of 10.00 over 3 took 6.67 (cumulative shares 3.33, 6.67): the last takes the 3.33 left,
    # plus its 20 % tax added on top (0.666 -> 0.67)
    assert cart.returned_total() == 333 + 67
    body = cart.checkout("till-1", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "bob")
    assert isinstance(body, dict)
    return_completed_v1(body)
    assert body["refunds"][0]["amount"]["minor"] == 400 and body["total"]["minor"] == -400


def test_an_old_sale_or_a_fully_returned_one_cannot_be_opened() -> None:
    old = ReturnCart.for_sale({**_sale(), "ts": NOW - 31 * 86_400_000}, "EUR", 50_000, ReturnsPolicy(), NOW, None)
    assert isinstance(old, Rejected) and "more than the 30 days" in old.message
    done = ReturnCart.for_sale(_sale(returnable=0), "EUR", 50_000, ReturnsPolicy(), NOW, None)
    assert isinstance(done, Rejected) and "returned already" in done.message


def test_without_a_receipt_items_are_scanned_at_todays_price() -> None:
    cart = ReturnCart("EUR", 50_000, ReturnsPolicy(), None, "manager", "gift")
    offer = Offer("COF-250", "Coffee", 1, 499, "EUR", "std", 200_000, True)
    assert isinstance(cart.take_line(1, 1, "resaleable"), Rejected)
    assert cart.take_item(offer, 2, "resaleable") is None
    body = cart.checkout("till-1", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "bob")
    assert isinstance(body, dict) and "original" not in body and body["approver"] == "manager"
    return_completed_v1(body)
    assert body["total"]["minor"] == -998


@pytest.mark.parametrize(("change", "where", "says"), [
    (lambda b: b["total"].update(minor=-371), "total", "new lines minus the returned"),
    (lambda b: b["change"].update(minor=1), "change", "must equal the total"),
    (lambda b: b["refunds"][0].pop("card"), "refunds[0].card", "exactly when the method is card"),
    (lambda b: (b.pop("original"), b.pop("approver")), "approver", "needs a manager's approval"),
    (lambda b: b.pop("original"), "returned", "original_line needs the original order"),
    (lambda b: b.update(returned=[]), "returned", "at least one returned item"),
])
def test_return_completed_rules_refuse_what_does_not_add_up(change: Any, where: str, says: str) -> None:
    body = copy.deepcopy(RETURN_BODY)
    return_completed_v1(body)
    change(body)
    with pytest.raises(SchemaError) as refused:
        return_completed_v1(body)
    assert refused.value.where == where and says in str(refused.value)


@pytest.mark.parametrize(("table", "says"), [
    ({"days": -1}, "days"), ({"conditions": ["broken"]}, "conditions"), ({"conditions": []}, "conditions"),
    ({"restocking_fee_bp_damaged": 10_001}, "restocking_fee_bp_damaged"), ({"refund_to": "gift card"}, "refund_to"),
    ({"restock_damaged": "yes"}, "restock_damaged"),
])
def test_a_bad_returns_setting_stops_the_store_at_load(table: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_returns(table, "store.toml")
    assert says in str(refused.value)


def test_an_unknown_returns_setting_is_refused(tmp_path: Path) -> None:
    from novapos.config import load_store
    demo = (Path(__file__).parent.parent / "configs" / "demo-store.toml").read_text()
    path = tmp_path / "store.toml"
    path.write_text(demo.replace("restock_damaged = false", "restock_damaged = false\nrefund_too = \"cash\""))
    with pytest.raises(ConfigError) as refused:
        load_store(path)
    assert "[returns] refund_too" in str(refused.value)
