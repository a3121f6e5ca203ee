"""A sale paid with loyalty points and a gift card prints each as itself, through the real ESC/POS driver to the
simulated printer: the points redeemed (and offline when taken so), the gift card masked as the sale carries it."""

from __future__ import annotations

from actors.printing.receipt import render_receipt
from tests.events import CUSTOMER
from tests.receipt_bodies import cash, eur
from tests.test_receipts import CONTEXT, ORDER, SOLD_AT, printed, row, rows, shoe_and_socks


def test_points_and_a_gift_card_print_as_themselves_the_card_masked() -> None:
    points = {"id": "00000000-0000-7000-8000-000000000002", "method": "points", "amount": eur(1500),
              "points": {"customer": CUSTOMER, "points": 1500, "redemption": "00000000-0000-7000-8000-0000000000d1",
                         "offline": True}}
    gift_card = {"id": "00000000-0000-7000-8000-000000000003", "method": "gift_card", "amount": eur(2000),
                 "gift_card": {"card": "************7890", "redemption": "00000000-0000-7000-8000-0000000000e1"}}
    body = shoe_and_socks([cash(7797)])  # a v3 sale (checked as one), then paid the v5 way
    body["tenders"] = [points, gift_card, cash(4297)]
    [receipt], _ = printed(render_receipt(CONTEXT, {"id": ORDER, "seq": 3, "body": body}, SOLD_AT), 1)
    text = rows(receipt)
    expected = [row("Points 1500 (offline)", "15.00 EUR"), row("Gift card ************7890", "20.00 EUR"),
                row("Cash", "42.97 EUR")]
    assert [line for line in text if line in expected] == expected
    assert "0000000000d1" not in receipt  # the redemption ids are the hub's business, not the customer's
