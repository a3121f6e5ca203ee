"""Well-formed events, and a plain publisher, for tests that talk to the hub directly."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import trio

from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.subjects import event_subject


def sale_event(seq: int = 1, store: str = "store-001", total: int = 499) -> Envelope:
    line = {"sku": "COF-250", "name": "Ground coffee 250 g", "quantity": 1,
            "unit_price": {"minor": total, "currency": "EUR"}, "amount": {"minor": total, "currency": "EUR"}}
    return Envelope(id=uuid7(), type="sale.completed", v=1, tenant="demo", store=store, seq=seq, ts=1_700_000_000_000,
                    body={"till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR", "lines": [line],
                          "total": {"minor": total, "currency": "EUR"},
                          "tenders": [{"method": "cash", "amount": {"minor": total, "currency": "EUR"}}],
                          "change": {"minor": 0, "currency": "EUR"}})


def _eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def sale_v3_body() -> dict[str, Any]:
    """A sale.completed v3 body with every optional part: a price override and a 10 % line discount on the
    coffee (2 x 4.50 = 9.00, less 0.90), milk with an attribute, a 1.00 order discount shared 86 / 14 by
    the largest remainder, tax included at 7 %, a card tender of 5.00 and 4.00 cash (0.61 change)."""
    tax = {"class": "food", "rate_ppm": 70_000, "included": True}
    return {
        "till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR",
        "drawer_session": "0190a3c4-7e1f-7b2a-9c3d-4e5f60718293",
        "lines": [
            {"line": "a1b2c3d4e5f6", "sku": "COF-250", "name": "Ground coffee 250 g", "attributes": [["size", "250 g"]],
             "quantity": 2, "list_price": _eur(499), "unit_price": _eur(450),
             "override": {"reason": "price match", "approver": "manager"},
             "discount": {"kind": "percent", "value": 1000, "reason": "loyalty", "amount": _eur(90)},
             "order_discount": _eur(86), "amount": _eur(724), "catalog_version": 1, "tax": {**tax, "amount": _eur(47)}},
            {"line": "0f1e2d3c4b5a", "sku": "MLK-1L", "name": "Whole milk 1 l", "attributes": [["size", "1 l"]],
             "quantity": 1, "list_price": _eur(129), "unit_price": _eur(129), "order_discount": _eur(14),
             "amount": _eur(115), "catalog_version": 1, "tax": {**tax, "amount": _eur(8)}},
        ],
        "order_discount": {"kind": "amount", "value": 100, "reason": "complaint", "amount": _eur(100)},
        "total": _eur(839), "tax_total": _eur(55),
        "tenders": [
            {"id": "0190a3c4-7e1f-7b2a-9c3d-000000000001", "method": "card", "amount": _eur(500),
             "card": {"reference": "T1-000123", "scheme": "visa", "masked": "************4242", "auth_code": "A1B2C3",
                      "terminal": "terminal-1", "signature": False}},
            {"id": "0190a3c4-7e1f-7b2a-9c3d-000000000002", "method": "cash", "amount": _eur(400)},
        ],
        "change": _eur(61),
    }


QR_TENDER = {"id": "0190a3c4-7e1f-7b2a-9c3d-000000000003", "method": "qr", "amount": _eur(200),
             "qr": {"intent": "0190a3c4-7e1f-7b2a-9c3d-0000000000a1", "provider_ref": "qr_3f9a1c"}}


def sale_v4_body() -> dict[str, Any]:
    """The v3 sale paid by QR code first (2.00), then card (3.00) and cash (4.00, 0.61 change): sale.completed v4."""
    body = sale_v3_body()
    card, cash = body["tenders"]
    card["amount"] = _eur(300)
    body["tenders"] = [{**QR_TENDER, "amount": _eur(200), "qr": dict(QR_TENDER["qr"])}, card, cash]
    return body


CUSTOMER = "0190a3c4-7e1f-7b2a-9c3d-0000000000c1"
POINTS_TENDER = {"id": "0190a3c4-7e1f-7b2a-9c3d-000000000004", "method": "points", "amount": _eur(200),
                 "points": {"customer": CUSTOMER, "points": 200, "redemption": "0190a3c4-7e1f-7b2a-9c3d-0000000000d1",
                            "offline": False}}
GIFT_CARD_TENDER = {"id": "0190a3c4-7e1f-7b2a-9c3d-000000000005", "method": "gift_card", "amount": _eur(300),
                    "gift_card": {"card": "************1234", "redemption": "0190a3c4-7e1f-7b2a-9c3d-0000000000e1"}}


def sale_v5_body(gift_card_first: bool = False) -> dict[str, Any]:
    """The v3 sale made for a customer: a promotion takes 0.30 off the coffee before its 10 % discount (87 now) and
    the order discount (shared 86 / 14), a coupon was used, and it is paid by points (2.00), gift card (3.00), card
    (1.00) and cash (4.00, 1.88 change): sale.completed v5 with every optional part."""
    body = sale_v3_body()
    coffee, milk = body["lines"]
    coffee["promotions"] = [{"promotion": "0190a3c4-7e1f-7b2a-9c3d-0000000000f1", "name": "Coffee 0.30 off",
                             "amount": _eur(30)}]
    coffee["discount"]["amount"], coffee["order_discount"], coffee["amount"] = _eur(87), _eur(86), _eur(697)
    coffee["tax"]["amount"] = _eur(46)
    card, cash = body["tenders"]
    card["amount"] = _eur(100)
    points = dict(POINTS_TENDER, points=dict(POINTS_TENDER["points"]))
    gift_card = dict(GIFT_CARD_TENDER, gift_card=dict(GIFT_CARD_TENDER["gift_card"]))
    body.update({"customer": {"id": CUSTOMER}, "promotions_version": 3, "total": _eur(812), "tax_total": _eur(54),
                 "coupons": [{"code": "WELCOME-7Q2X", "promotion": "0190a3c4-7e1f-7b2a-9c3d-0000000000f1",
                              "redemption": "0190a3c4-7e1f-7b2a-9c3d-0000000000f2", "offline": False}],
                 "tenders": [gift_card, points, card, cash] if gift_card_first else [points, gift_card, card, cash],
                 "change": _eur(188)})
    return body

def with_quantity(body: dict[str, Any], quantity: int) -> dict[str, Any]:
    """A sale_event body whose one line sells `quantity` at its unit price, with totals that still add up."""
    line = body["lines"][0]
    amount = line["unit_price"]["minor"] * quantity
    line["quantity"] = quantity
    line["amount"]["minor"] = body["total"]["minor"] = body["tenders"][0]["amount"]["minor"] = amount
    return body


SUBJECT = event_subject("demo", "store-001", "sale.completed")


async def publish(nats_server: EmbeddedNats, items: list[tuple[str, bytes, dict[str, str] | None]]) -> None:
    """Publish with a plain nats-py client of the test's own, as the hub (on a worker thread's asyncio loop)."""
    async def run() -> None:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        js = client.jetstream()
        for subject, payload, headers in items:
            await js.publish(subject, payload, headers=headers)
        await client.close()
    await trio.to_thread.run_sync(asyncio.run, run())
