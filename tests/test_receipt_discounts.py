"""A receipt shows what the customer was given: a v3 line's variant, price override and discounts under it."""

from __future__ import annotations

from datetime import datetime

from actors.printing.receipt import ReceiptContext, render_receipt
from novapos.config.receipt import ReceiptSettings
from tests.events import sale_v3_body


def test_a_discounted_sale_prints_each_override_and_discount_under_its_line() -> None:
    body = sale_v3_body()
    body["lines"][0]["discount"]["value"] = 1050  # 10.50 %: printed in integers, as the basis points say
    printed = [line.text for line in render_receipt(ReceiptContext(ReceiptSettings("Demo")),
                                                    {"id": "x", "seq": 1, "body": body}, datetime(2026, 12, 2)).lines]
    start = printed.index("2 x Ground coffee 250 g           9.00 EUR")
    assert printed[start:start + 12] == [
        "2 x Ground coffee 250 g           9.00 EUR",
        "  Size: 250 g",
        "  @ 4.50 EUR",
        "  Price changed from 4.99 EUR",
        "  Reason: price match",
        "  Discount 10.50%                -0.90 EUR",
        "  loyalty",
        "1 x Whole milk 1 l                1.29 EUR",
        "  Size: 1 l",
        "------------------------------------------",
        "Order discount                   -1.00 EUR",
        "  complaint"]
    assert "TOTAL                             8.39 EUR" in printed
