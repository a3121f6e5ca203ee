"""The stores' loyalty requests (novapos.<tenant>.<store>.req.<kind>, novapos.wire.loyalty), checked like client
input and answered within the asking store's tenant only (the subject says who asks). A refusal is the answer's
body {"refused": {"code", "message"}} (404 no such customer or redemption, 409 too few points or a redemption id
reused), which actors.payments.asking raises as HubRefused; a malformed request is validators.Invalid (400).

- points_redeem {redemption, customer, points, till, actor} -> {redemption, points, balance, value_minor, currency}
- points_reverse {redemption, actor, reason?} -> {redemption, reversed: true}
- loyalty_settings {} -> {point_value_minor, currency, offline_store_budget_points, offline_customer_cap_points,
  earn: {points_per_unit, unit_minor, per_order_points, bonuses}, tiers: [{name, min_spend_minor, multiplier_ppm}]}
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from hub.loyalty import program as programs
from hub.loyalty import redemptions
from hub.loyalty.program import MAX_POINTS
from hub.loyalty.redemptions import Redemption
from hub.payments.requests import actor, reason
from hub.refusals import responder
from novapos import validators
from novapos.wire.loyalty import LOYALTY_SETTINGS, POINTS_REDEEM, POINTS_REVERSE, responder_subject


async def _redeem(pool: asyncpg.Pool, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
    asked = Redemption(redemption=validators.token("redemption", body.get("redemption")),
                       customer=uuid.UUID(validators.uuid_text("customer", body.get("customer"))),
                       points=validators.integer("points", body.get("points"), 1, MAX_POINTS),
                       till=validators.token("till", body.get("till")), actor=actor("actor", body.get("actor")))
    async with pool.acquire() as conn:
        return await redemptions.redeem(conn, tenant, store, asked)


async def _reverse(pool: asyncpg.Pool, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
    redemption = validators.token("redemption", body.get("redemption"))
    who, why = actor("actor", body.get("actor")), reason("reason", body.get("reason"))
    async with pool.acquire() as conn:
        return await redemptions.reverse(conn, tenant, store, redemption, who, why)


async def _settings(pool: asyncpg.Pool, tenant: str, _store: str, _body: dict[str, Any]) -> dict[str, Any]:
    async with pool.acquire() as conn:
        program = (await programs.load(conn, tenant)).to_json()
    return {"point_value_minor": program["point_value_minor"], "currency": program["currency"],
            "offline_store_budget_points": program["offline_store_budget_points"],
            "offline_customer_cap_points": program["offline_customer_cap_points"],
            "earn": {"points_per_unit": program["earn_points_per_unit"], "unit_minor": program["earn_unit_minor"],
                     "per_order_points": program["earn_per_order_points"], "bonuses": program["earn_bonuses"]},
            "tiers": program["tiers"]}


RESPONDERS = {responder_subject(kind): responder(kind, handle) for kind, handle in (
    (POINTS_REDEEM, _redeem), (POINTS_REVERSE, _reverse), (LOYALTY_SETTINGS, _settings))}
