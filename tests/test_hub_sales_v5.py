"""sale.completed v5 and return.completed v3 through the hub's real ingest (NATS JetStream -> PostgreSQL): the
order keeps its customer, each line's promotions, the coupons and the points and gift card tenders, and the
console's order shows them; stock moves; the card tender is linked to its payment while points and gift card are
not; the drawer session's takings count every method; a v3 return keeps the customer and its refunds by method."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import nats
import trio

from hub.app import run_hub
from hub.sales.applier import customer_id
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope, decode
from novapos.wire.ids import uuid7
from novapos.wire.orders import decode_answer, encode_request, order_subject
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.customer_world import two_tenants_nats  # noqa: F401  (the fixture: stores of two tenants)
from tests.events import CUSTOMER, publish, sale_v5_body
from tests.stock_world import build_world

SESSION = "0190a3c4-7e1f-7b2a-9c3d-4e5f60718293"  # sale_v3_body's drawer session



def _eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def _event(kind: str, v: int, body: dict[str, Any], seq: int) -> Envelope:
    made = Envelope(id=uuid7(), type=kind, v=v, tenant="demo", store="store-001", seq=seq, ts=1_700_000_000_000,
                    body=body)
    return decode(made.encode())  # valid by its schema, or the test is wrong


def _return_v3(order: Envelope) -> Envelope:
    """The milk of the v5 sale brought back: 1.15 refunded, 0.65 to the customer's points and 0.50 to the gift card."""
    milk = order.body["lines"][1]
    back = {"original_line": 2, "sku": milk["sku"], "name": milk["name"], "quantity": 1,
            "unit_price": milk["unit_price"], "amount": milk["amount"], "tax": milk["tax"],
            "condition": "resaleable", "restock": True}
    body = {"till": "till-1", "session": "s-2", "cashier": "bob", "currency": "EUR", "drawer_session": SESSION,
            "original": {"order": str(order.id), "store": "store-001"}, "customer": {"id": CUSTOMER},
            "returned": [back], "restocking_fee": _eur(0), "lines": [], "tenders": [],
            "refunds": [{"id": str(uuid7()), "method": "points", "amount": _eur(65),
                         "points": {"customer": CUSTOMER, "points": 65}},
                        {"id": str(uuid7()), "method": "gift_card", "amount": _eur(50),
                         "gift_card": {"card": "************1234", "redemption": str(uuid7())}}],
            "change": _eur(0), "total": _eur(-115)}
    return _event("return.completed", 3, body, 3)


async def _ask_order(nats_server: EmbeddedNats, order: str) -> dict[str, Any]:
    async def run() -> Any:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        try:
            return await client.request(order_subject("demo", "store-003"), encode_request(order), timeout=5)
        finally:
            await client.close()
    reply = await trio.to_thread.run_sync(asyncio.run, run())
    sale = decode_answer(reply.data)
    assert sale is not None
    return sale


async def _count(database_url: str, sql: str, expected: int) -> bool:
    return (await query(database_url, sql))[0][0] == expected


async def test_a_v5_sale_and_a_v3_return_land_everywhere_a_v4_and_v2_do(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    opened = _event("drawer.opened", 1, {"session": SESSION, "till": "till-1", "currency": "EUR", "cashier": "alice",
                                         "float": {"counts": {"1000": 1}, "total": _eur(1000)}}, 1)
    sold = _event("sale.completed", 5, sale_v5_body(), 2)
    back = _return_v3(sold)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, dataclasses.replace(hub_config, tenants=("demo", "other")))
        await publish(nats_server, [(event_subject("demo", "store-001", event.type), event.encode(), None)
                                    for event in (opened, sold, back)])
        await wait_until(lambda: _count(database_url, "SELECT count(*) FROM returns", 1))
        await sign_in_admin(http, hub.url, database_url)
        order = (await http.get(f"{hub.url}/api/orders/{sold.id}")).json()
        assert (order["v"], order["customer_id"], order["promotions_version"], order["total_minor"]) == (
            5, CUSTOMER, 3, 812)
        assert order["coupons"] == sale_v5_body()["coupons"]
        coffee, milk = order["lines"]
        assert (coffee["promotions"], coffee["promotions_minor"], coffee["discount_minor"], coffee["amount_minor"]) == (
            [{"promotion": "0190a3c4-7e1f-7b2a-9c3d-0000000000f1", "name": "Coffee 0.30 off", "amount_minor": 30}],
            30, 87, 697)
        assert (milk["promotions"], milk["promotions_minor"]) == ([], 0)
        points, gift_card, card, cash = order["tenders"]
        assert (points["method"], points["amount_minor"], points["points_customer"], points["points_points"],
                points["points_redemption"], points["points_offline"], points["gift_card_masked"]) == (
            "points", 200, CUSTOMER, 200, "0190a3c4-7e1f-7b2a-9c3d-0000000000d1", False, None)
        assert (gift_card["method"], gift_card["gift_card_masked"], gift_card["gift_card_redemption"],
                gift_card["points_points"]) == ("gift_card", "************1234",
                                                "0190a3c4-7e1f-7b2a-9c3d-0000000000e1", None)
        assert (card["card_scheme"], card["points_customer"], cash["method"]) == ("visa", None, "cash")
        assert [(r["event_id"], r["refunded_minor"]) for r in order["returns"]] == [(str(back.id), 115)]

        returns = (await http.get(f"{hub.url}/api/returns")).json()["items"]
        assert [(r["customer_id"], r["refund_methods"], r["refunds"]) for r in returns] == [(
            CUSTOMER, ["points", "gift_card"],
            [{"method": "points", "amount_minor": 65, "points": {"customer": CUSTOMER, "points": 65}},
             {"method": "gift_card", "amount_minor": 50, "gift_card": back.body["refunds"][1]["gift_card"]}])]

        asked = await _ask_order(nats_server, str(sold.id))  # what a store taking it back is told
        assert asked["customer"] == CUSTOMER
        assert [(t["method"], t["points"], t["card"], t["redemption"]) for t in asked["tenders"]] == [
            ("points", 200, None, None), ("gift_card", None, "************1234", "0190a3c4-7e1f-7b2a-9c3d-0000000000e1"),
            ("card", None, None, None), ("cash", None, None, None)]

        session = (await http.get(f"{hub.url}/api/drawer-sessions/{SESSION}")).json()
        assert session["takings"] == [  # cash 4.00 less 1.88 change; the return refunded to points and gift card
            {"method": "card", "taken_minor": 100, "refunded_minor": 0},
            {"method": "cash", "taken_minor": 212, "refunded_minor": 0},
            {"method": "gift_card", "taken_minor": 300, "refunded_minor": 50},
            {"method": "points", "taken_minor": 200, "refunded_minor": 65}]
        nursery.cancel_scope.cancel()
    moved = await query(database_url, "SELECT sku, on_hand_change FROM stock_movements ORDER BY id")
    assert [tuple(row) for row in moved] == [("COF-250", -2), ("MLK-1L", -1), ("MLK-1L", 1)]
    linked = await query(database_url, "SELECT tender_id, method FROM payment_tender_sales")
    assert [tuple(row) for row in linked] == [("0190a3c4-7e1f-7b2a-9c3d-000000000001", "card")]


def test_a_customer_id_that_is_not_a_uuid_is_kept_as_sent() -> None:
    """A sale is never refused (the store has sold): an id the hub cannot read as a UUID is kept as text."""
    assert customer_id({"id": CUSTOMER.upper()}) == CUSTOMER
    assert customer_id({"id": "legacy-42"}) == "legacy-42"
    assert customer_id(None) is None
