"""A customer's gift cards (those issued to them by name) with their ledgers, for a data subject request's export.
The number is not in it: the hub never had it after issuing the card. Erasure needs nothing here: a card names
the customer by id only."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from hub.giftcards.cards import card_json, entry_json


async def export(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID | str) -> dict[str, Any]:
    found = await conn.fetch("SELECT * FROM gift_cards WHERE tenant = $1 AND customer = $2 ORDER BY issued_at, id",
                             tenant, uuid.UUID(str(customer)))
    cards = []
    for card in found:
        ledger = await conn.fetch("SELECT * FROM gift_card_ledger WHERE tenant = $1 AND card = $2 ORDER BY id",
                                  tenant, card["id"])
        cards.append({**card_json(card), "ledger": [entry_json(entry) for entry in ledger]})
    return {"gift_cards": cards}
