"""A receipt explains the promotions: each one's name and what it took off, under its line, before the line's
discount, and what the customer saved in all (sale.completed v5)."""

from __future__ import annotations

from datetime import datetime

from actors.printing.receipt import ReceiptContext, render_receipt
from novapos.config.receipt import ReceiptSettings
from tests.events import sale_v3_body, sale_v5_body


def _printed(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [line.text for line in render_receipt(ReceiptContext(ReceiptSettings("Demo")),
                                                 {"id": "x", "seq": 1, "body": body}, datetime(2026, 12, 2)).lines]


def test_each_promotion_prints_under_its_line_and_the_total_saved_before_the_total() -> None:
    printed = _printed(sale_v5_body())
    start = printed.index("2 x Ground coffee 250 g           9.00 EUR")
    assert printed[start + 4:start + 8] == [
        "  Reason: price match",
        "  Coffee 0.30 off                -0.30 EUR",
        "  Discount 10.00%                -0.87 EUR",
        "  loyalty"]
    saved = printed.index("You saved                         2.17 EUR")  # 0.30 + 0.87 + 1.00
    assert saved < printed.index("TOTAL                             8.12 EUR")


def test_a_long_promotion_name_is_cut_so_its_amount_stays_whole_and_a_sale_without_savings_says_nothing() -> None:
    body = sale_v5_body()
    body["lines"][0]["promotions"][0]["name"] = "Ä very long promotion name that goes on and on and on"
    line = next(text for text in _printed(body) if text.endswith("-0.30 EUR"))
    assert len(line) == 42 and line.startswith("  Ä very long promotion")  # cp858 has Ä
    plain = sale_v3_body()
    for item in plain["lines"]:
        item.pop("discount", None)
        item["amount"]["minor"] = item["unit_price"]["minor"] * item["quantity"]  # an override is a price: no saving
    assert not any(text.startswith("You saved") for text in _printed(plain))
