"""sale.completed v3 at the hub, on real PostgreSQL: discounts, overrides, attributes, tender ids and card details
are stored as such, replay validation checks a v3 line's LIST price (a discount or an override is not a price
difference; a tampered lock is), stock moves for v3 lines, and the orders API shows it all."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import asyncpg
import trio

from actors.catalog.local import Offer
from actors.till.cart import Cart, Discount
from hub.sales import orders
from novapos.wire.envelope import Envelope, decode
from novapos.wire.ids import uuid7
from tests.conftest import query
from tests.events import sale_v3_body
from tests.test_sales_replay import SOLD_AT, _on_fresh_loop, ingest_batches, with_catalog

COFFEE = Offer("COF-250", "Ground coffee 250 g", 2, 499, "EUR", "standard", 200_000, True, (("size", "250 g"),))
MILK = Offer("MLK-1L", "Whole milk 1 l", 2, 129, "EUR", "reduced", 55_000, True)
"""As the replay tests' catalog sells them in store-001 (north) at SOLD_AT."""
DRAWER_SESSION = "0190a3c4-7e1f-7b2a-9c3d-4e5f60718293"


def event(body: dict[str, Any], seq: int) -> Envelope:
    made = Envelope(id=uuid7(), type="sale.completed", v=3, tenant="demo", store="store-001", seq=seq, ts=SOLD_AT,
                    body=body)
    return decode(made.encode())  # valid by the v3 schema, or the test is wrong


def discounted_sale(coffee: Offer = COFFEE) -> dict[str, Any]:
    """What the till's cart commits for 3 coffees overridden to 4.50 with 10 % off, a milk, and 1.00 off the order."""
    cart = Cart("EUR", 50_000)
    assert cart.add(coffee, 3) is None and cart.add(MILK, 1) is None
    line = cart.lines[0].id
    assert not isinstance(cart.override_price(line, 450, "price match", "manager"), Exception)
    assert cart.discount_line(line, Discount("percent", 1000, "loyalty")) is None
    assert cart.discount_order(Discount("amount", 100, "complaint")) is None
    assert cart.tender_cash(cart.due().minor + 21) is None
    body = cart.checkout("till-1", "s-1", "alice", DRAWER_SESSION)
    assert isinstance(body, dict)
    return body


async def test_a_discounted_overridden_sale_is_stored_as_such_and_is_not_a_price_difference(database_url: str) -> None:
    await with_catalog(database_url)
    body = discounted_sale()
    sold = event(body, 1)
    found = await ingest_batches(database_url, [[sold]])
    assert found == {}  # the list prices are the catalog's: the override and the discounts are decisions, not diffs
    lines = await query(database_url, "SELECT line_no, line_id, attributes, list_price_minor, unit_price_minor,"
                        " override_reason, override_approver, discount_kind, discount_value, discount_minor,"
                        " order_discount_minor, amount_minor FROM sale_lines WHERE event_id = $1 ORDER BY line_no",
                        sold.id)
    # 3 x 4.50 = 13.50, 10 % off = 1.35, net 12.15; milk 1.29; 1.00 shared 12.15 : 1.29 -> 90.4 / 9.6: 90 and 10
    assert [tuple(row) for row in lines] == [
        (1, body["lines"][0]["line"], '[["size", "250 g"]]', 499, 450, "price match", "manager", "percent", 1000, 135,
         90, 1215 - 90),
        (2, body["lines"][1]["line"], "[]", 129, 129, None, None, None, None, 0, 10, 119)]
    [sale] = await query(database_url, "SELECT drawer_session, order_discount_kind, order_discount_value,"
                         " order_discount_reason, order_discount_minor, total_minor, change_minor, v FROM sales")
    assert tuple(sale) == (DRAWER_SESSION, "amount", 100, "complaint", 100, 1215 - 90 + 119, 21, 3)
    [tender] = await query(database_url, "SELECT tender_id, method, amount_minor, card_scheme FROM sale_tenders")
    assert tuple(tender) == (body["tenders"][0]["id"], "cash", 1244 + 21, None)
    moved = await query(database_url, "SELECT sku, on_hand_change FROM stock_movements WHERE event_id = $1"
                        " ORDER BY line_no", sold.id)
    assert [tuple(row) for row in moved] == [("COF-250", -3), ("MLK-1L", -1)]


async def test_a_tampered_list_price_is_a_difference_even_behind_a_discount(database_url: str) -> None:
    """A v3 line whose lock says 4.50 when the catalog said 4.99 (no override recorded): a list_price diff."""
    await with_catalog(database_url)
    tampered = event(discounted_sale(dataclasses.replace(COFFEE, unit_minor=450)), 1)
    found = await ingest_batches(database_url, [[tampered]])
    assert list(found) == [(tampered.id, 1)]
    diff = json.loads(found[(tampered.id, 1)])
    assert diff["differences"] == {"list_price": {"till": 450, "catalog": 499}} and diff["v"] == 3


async def test_the_orders_api_shows_discounts_overrides_and_card_details(database_url: str) -> None:
    await with_catalog(database_url)
    body = sale_v3_body()
    sold = event(body, 1)
    await ingest_batches(database_url, [[sold]])

    async def read(pool: asyncpg.Pool) -> dict[str, Any] | None:
        return await orders.detail(pool, "demo", sold.id)
    order = await trio.to_thread.run_sync(_on_fresh_loop, database_url, read)
    assert order is not None
    assert (order["order_discount_kind"], order["order_discount_minor"], order["drawer_session"]) == (
        "amount", 100, body["drawer_session"])
    coffee, milk = order["lines"]
    assert (coffee["list_price_minor"], coffee["unit_price_minor"], coffee["override_approver"],
            coffee["discount_minor"], coffee["order_discount_minor"], coffee["attributes"]) == (
        499, 450, "manager", 90, 86, [["size", "250 g"]])
    assert milk["override_reason"] is None and milk["order_discount_minor"] == 14
    card, cash = order["tenders"]
    assert (card["method"], card["card_scheme"], card["card_masked"], card["card_auth_code"], card["tender_id"]) == (
        "card", "visa", "************4242", "A1B2C3", body["tenders"][0]["id"])
    assert cash["card_scheme"] is None and cash["tender_id"] == body["tenders"][1]["id"]
