"""Helpers for the coupon and gift card tests: a tenant world, v5 sales naming coupons and gift card tenders, and
a hub whose NATS has two stores of one tenant (two real store identities to race each other)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from hub.coupons.codes import generate
from novapos import promotions as engine
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.schemas import SCHEMAS
from tests.events import CUSTOMER, GIFT_CARD_TENDER, sale_v5_body

PROMOTION = "0190a3c4-7e1f-7b2a-9c3d-0000000000f1"
"""The promotion tests.events' v5 sale names; code_only_promotion makes it the tenant's."""
STORES = (("demo", "store-001"), ("demo", "store-002"))


def two_store_nats(folder: Path) -> EmbeddedNats:
    """NATS with the production authorization and a user for each of demo's store-001 and store-002."""
    return EmbeddedNats.authorized(folder, stores=STORES).start()


def hub_on(config: HubConfig, nats: EmbeddedNats) -> HubConfig:
    return dataclasses.replace(config, nats_url=nats.url, nats_credentials=nats.hub_credentials,
                               tls=nats.tls_settings())


def sale(coupons: list[dict[str, Any]] | None = None, gift_card: tuple[str, int] | None = None,
         store: str = "store-001", customer: str | None = CUSTOMER) -> Envelope:
    """A valid sale.completed v5 naming `coupons` and, when given, a gift card tender (redemption, amount in place of
    the example's 3.00: the cash tender takes up the difference)."""
    body = sale_v5_body()
    body["coupons"] = coupons or []
    if not coupons:
        del body["coupons"]
    if customer is None:
        del body["customer"]
        body["tenders"] = [tender for tender in body["tenders"] if tender["method"] != "points"]
        body["tenders"][-1]["amount"]["minor"] += 200
    gift = next(tender for tender in body["tenders"] if tender["method"] == "gift_card")
    if gift_card is None:
        body["tenders"].remove(gift)
        body["tenders"][-1]["amount"]["minor"] += GIFT_CARD_TENDER["amount"]["minor"]
    else:
        gift["gift_card"] = {"card": "**** " + "0000", "redemption": gift_card[0]}
        body["tenders"][-1]["amount"]["minor"] += gift["amount"]["minor"] - gift_card[1]
        gift["amount"] = {"minor": gift_card[1], "currency": "EUR"}
    SCHEMAS[("sale.completed", 5)](body)
    return Envelope(id=uuid7(), type="sale.completed", v=5, tenant="demo", store=store, seq=1, ts=1_700_000_000_000,
                    body=body)


def coupon(code: str, redemption: str, offline: bool = False, promotion: str = PROMOTION) -> dict[str, Any]:
    return {"code": code, "promotion": promotion, "redemption": redemption, "offline": offline}


def fresh_code() -> str:
    return generate()


async def code_only_promotion(pool: asyncpg.Pool, *, code_only: bool = True, public_codes: tuple[str, ...] = (),
                              state: str = "draft", promotion: str = PROMOTION) -> uuid.UUID:
    """A promotion of demo (10 % off the order) with the id `promotion`, in `state`, written as hub.promotions
    writes one (its head and revision 1, the engine's wire body): going live by approval is hub.promotions' to test."""
    body = engine.to_wire(engine.from_wire({
        "id": promotion, "version": 1, "currency": "EUR", "timezone": "Europe/Paris", "name": "Ten off with a code",
        "kind": "percent", "applies_to": "order", "value": 1000, "code_only": code_only,
        "public_codes": list(public_codes)}))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO promotions (tenant, id, name, state, revision, live_revision, created_by)"
                           " VALUES ('demo', $1, $2, $3, 1, $4, 'ada')", uuid.UUID(promotion), body["name"], state,
                           1 if state == "live" else None)
        await conn.execute("INSERT INTO promotion_revisions (tenant, promotion, revision, body, author)"
                           " VALUES ('demo', $1, 1, $2::jsonb, 'ada')", uuid.UUID(promotion), json.dumps(body))
    return uuid.UUID(promotion)
