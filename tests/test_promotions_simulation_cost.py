"""The simulation's cost is what a proposal adds, sale by sale: a sale where it displaces a bigger discount counts
nothing, never a saving netted against the cost of the others (a promotion cannot hide its cost that way)."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.promotions.records import Period
from hub.promotions.simulation import History, Sale, predict
from tests.test_promotions import CART, NOW, SOAP, promo, skus


def test_a_proposal_that_displaces_a_bigger_discount_costs_what_it_adds_elsewhere() -> None:
    # Live: 5.00 off an order of 17.00 or more. Proposed: 1.00 off soap, taken first (higher priority): on the
    # 17.60 cart it leaves 16.60, under the threshold, so that sale gets 4.00 less than before; on a soap-only
    # sale it adds 1.00.
    live = promo("order5", "amount", applies_to="order", value=500, min_spend_minor=1700, priority=1)
    proposal = promo("soap1", "amount", target=skus("SOAP"), value=100, priority=10)
    sales = (Sale("store-001", "north", NOW, tuple(CART)), Sale("store-001", "north", NOW, (SOAP,)))
    at = datetime.fromtimestamp(NOW / 1000, UTC)
    past = History(at, at, 1, 100, sales, (Period(live, NOW - 1, None),), False)
    prediction = predict(proposal, past)
    assert prediction.cost_minor == 100  # not 100 - 400 = -300
    assert prediction.per_store["store-001"]["cost_minor"] == 100
    assert prediction.sales_touched == 2
