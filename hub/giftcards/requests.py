"""The stores' gift card requests (novapos.wire.loyalty): balance, redeem, reverse and refund, answered within the
asking store's tenant. The card's number arrives whole (typed or scanned at the till) and leaves masked."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from hub.giftcards import cards, numbers
from hub.payments.requests import actor, reason
from hub.refusals import Handler, responder
from novapos import validators
from novapos.wire.loyalty import (
    GIFT_CARD_BALANCE,
    GIFT_CARD_REDEEM,
    GIFT_CARD_REFUND,
    GIFT_CARD_REVERSE,
    responder_subject,
)


async def _balance(pool: asyncpg.Pool, tenant: str, _store: str, body: dict[str, Any]) -> dict[str, Any]:
    return await cards.balance(pool, tenant, numbers.normalise("card", body.get("card")))


def _money(body: dict[str, Any]) -> tuple[int, str]:
    return (validators.minor_units("amount_minor", body.get("amount_minor"), minimum=1),
            validators.currency("currency", body.get("currency")))


async def _redeem(pool: asyncpg.Pool, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
    number = numbers.normalise("card", body.get("card"))
    amount, currency = _money(body)
    return await cards.redeem(pool, tenant, store, number=number,
                              redemption=validators.token("redemption", body.get("redemption")),
                              amount_minor=amount, currency=currency, till=validators.token("till", body.get("till")),
                              actor=actor("actor", body.get("actor")))


async def _reverse(pool: asyncpg.Pool, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
    return await cards.reverse(pool, tenant, store, redemption=validators.token("redemption", body.get("redemption")),
                               actor=actor("actor", body.get("actor")), reason=reason("reason", body.get("reason")))


async def _refund(pool: asyncpg.Pool, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
    number = numbers.normalise("card", body.get("card"))
    amount, currency = _money(body)
    return await cards.refund(pool, tenant, store, number=number,
                              redemption=validators.token("redemption", body.get("redemption")),
                              amount_minor=amount, currency=currency, till=validators.token("till", body.get("till")),
                              actor=actor("actor", body.get("actor")),
                               order=uuid.UUID(validators.uuid_text("order", body.get("order"))))


def _keyed(handle: Handler) -> Handler:
    """`handle`, refused 503 (what to configure) while the hub has no gift card key."""
    async def keyed(pool: asyncpg.Pool, tenant: str, store: str, body: dict[str, Any]) -> dict[str, Any]:
        numbers.configured()
        return await handle(pool, tenant, store, body)
    return keyed


RESPONDERS = {responder_subject(kind): responder(kind, _keyed(handle)) for kind, handle in (
    (GIFT_CARD_BALANCE, _balance), (GIFT_CARD_REDEEM, _redeem), (GIFT_CARD_REVERSE, _reverse),
    (GIFT_CARD_REFUND, _refund))}
