"""The payments outbox (P5-04): a payment event leaves the hub only if the change that made it committed.

`emit` is called inside the transaction that moved an intent; the relay (hub.payments.relay) publishes what
was emitted after the commit. A hub killed in between loses nothing: the rows wait for the next relay pass.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from novapos.wire.ids import uuid7

_NEXT = """
INSERT INTO payment_outbox_heads AS h (tenant, store, position) VALUES ($1, $2, 1)
ON CONFLICT (tenant, store) DO UPDATE SET position = h.position + 1
RETURNING position
"""


async def emit(conn: asyncpg.Connection, tenant: str, store: str, event_type: str, body: dict[str, Any]) -> uuid.UUID:
    """Write one payment event for `store` in the caller's transaction; its id (the Nats-Msg-Id it leaves with).
    The store's head row is locked until the caller commits: one store's events are numbered in commit order."""
    position = await conn.fetchval(_NEXT, tenant, store)
    event_id = uuid7()
    await conn.execute("INSERT INTO payment_outbox (id, tenant, store, position, type, body) VALUES ($1, $2, $3, $4,"
                       " $5, $6::jsonb)", event_id, tenant, store, position, event_type,
                       json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str))
    return event_id
