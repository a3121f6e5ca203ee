"""The appliers of sale.completed and return.completed at the gift cards: a v5 sale's gift_card tenders confirm
their redemptions, a v3 return's gift_card refunds confirm their credits (hub.giftcards.cards.confirm), in the
ingest's inbox transaction. The money moved when the till asked (gift_card_redeem, gift_card_refund): an event
only links the ledger entry to it, and a mismatch is counted and logged for a person, never refused (the store has
sold)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from hub.giftcards import cards
from novapos.wire.envelope import Envelope


async def apply_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    for event in events:
        if event.v < 5:
            continue
        for tender in event.body["tenders"]:
            if tender["method"] == "gift_card":
                await cards.confirm(conn, event.tenant, event.store, event.id, "redeem",
                                    tender["gift_card"]["redemption"], tender["amount"]["minor"])


async def apply_returns(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    for event in events:
        if event.v < 3:
            continue
        for refund in event.body["refunds"]:
            if refund["method"] == "gift_card":
                await cards.confirm(conn, event.tenant, event.store, event.id, "refund",
                                    refund["gift_card"]["redemption"], refund["amount"]["minor"])
