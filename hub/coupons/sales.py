"""The applier of sale.completed at the coupons: a v5 sale's coupons confirm their uses (hub.coupons.uses.confirm),
in the ingest's inbox transaction, so a replayed sale (the inbox skips it) never counts a use twice."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from hub.coupons import metrics, uses
from novapos.wire.envelope import Envelope


def customer_of(body: dict[str, object]) -> uuid.UUID | None:
    """The sale's customer as the hub's id type (None when absent, or not a UUID: such an id names nobody here)."""
    customer = body.get("customer")
    try:
        return uuid.UUID(str(customer["id"])) if isinstance(customer, dict) else None
    except ValueError:
        return None


async def apply_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    for event in events:
        if event.v < 5:
            continue
        customer = customer_of(event.body)
        for coupon in event.body.get("coupons", ()):
            metrics.USES.labels(await uses.confirm(conn, event.tenant, event.store, event.id, coupon,
                                                   customer)).inc()
