"""The stores' coupon requests (novapos.wire.loyalty): coupon_reserve and coupon_release, answered within the
asking store's tenant (the subject says which; NATS confines each store to its own subjects)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from hub.coupons import uses
from hub.payments.requests import actor
from hub.refusals import responder
from novapos import coupon_codes, validators
from novapos.wire.loyalty import COUPON_RELEASE, COUPON_RESERVE, responder_subject


def optional_customer(where: str, value: Any) -> uuid.UUID | None:
    """A customer's id (a UUID), or None when absent."""
    return None if value is None else uuid.UUID(validators.uuid_text(where, value))


async def _reserve(pool: asyncpg.Pool, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
    return await uses.reserve(pool, tenant, store, code=coupon_codes.normalise("code", body.get("code")),
                              redemption=validators.token("redemption", body.get("redemption")),
                              customer=optional_customer("customer", body.get("customer")),
                              till=validators.token("till", body.get("till")), actor=actor("actor", body.get("actor")),
                              till_ms=None if body.get("till_ms") is None else validators.integer(
                                  "till_ms", body.get("till_ms"), 0, 2**53))


async def _release(pool: asyncpg.Pool, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
    redemption = validators.token("redemption", body.get("redemption"))
    actor("actor", body.get("actor"))
    return await uses.release(pool, tenant, store, redemption)


RESPONDERS = {responder_subject(kind): responder(kind, handle)
              for kind, handle in ((COUPON_RESERVE, _reserve), (COUPON_RELEASE, _release))}
