"""What a person does to stock from the console: adjust, receive, return, transfer, reserve, release, and set
a low-stock threshold. Each runs in one transaction and either happens whole or is refused with a sentence
(ApiError), changing nothing. Every balance a refusal depends on is locked first (ledger.lock, in the one
order), so the check and the change see the same stock whatever else runs.

Decisions: an API change never takes stock below zero (a negative adjustment, a transfer or a reservation of
more than there is is refused; only sales, which happened, may). A reservation holds available stock only:
there is no reserving against goods not yet received.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter

from hub.audit.chain import Entry
from hub.audit.chain import record as audit
from hub.inventory.ledger import Balance, Movement, emit_low, lock, record
from novapos.adapters.http import ApiError

RESERVATIONS = Counter("novapos_hub_stock_reservations_total", "Reservations by what became of them",
                       ["outcome"])
EXPIRE_SQL = (
    # Safe with N hubs: each sweeper takes the due reservations no other holds, and each expires once.
    "UPDATE stock_reservations r SET status = 'expired', ended_at = now()"
    " WHERE r.id IN (SELECT id FROM stock_reservations WHERE status = 'active' AND expires_at <= now()"
    "  ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
    " RETURNING r.id, r.tenant, r.location_id, r.sku, r.quantity")


def balance_view(tenant: str, location: str, sku: str, balance: Balance) -> dict[str, Any]:
    return {"tenant": tenant, "location": location, "sku": sku, "on_hand": balance.on_hand,
            "reserved": balance.reserved, "available": balance.available,
            "low_threshold": balance.low_threshold, "low": balance.low}


async def _location(conn: asyncpg.Connection, tenant: str, location: str) -> int:
    found: int | None = await conn.fetchval(
        "SELECT id FROM locations WHERE tenant = $1 AND location = $2", tenant, location)
    if found is None:
        raise ApiError(422, f"tenant {tenant!r} has no location {location!r}: see the locations of the tenant's "
                            "stores and warehouses")
    return found


async def _known(conn: asyncpg.Connection, tenant: str, sku: str) -> None:
    if not await conn.fetchval("SELECT EXISTS (SELECT FROM variants WHERE tenant = $1 AND sku = $2)", tenant, sku):
        raise ApiError(422, f"SKU {sku!r} is not in tenant {tenant!r}'s catalog: add it to the catalog first")


async def change(conn: asyncpg.Connection, tenant: str, location: str, sku: str, kind: str, quantity: int,
                 reason: str | None, *, actor: str = "system") -> dict[str, Any]:
    """An adjustment (quantity signed, reason required by the caller), goods received or a return. An
    adjustment is a privileged act: its stock.adjusted audit record commits with it, naming `actor`."""
    async with conn.transaction():
        where = await _location(conn, tenant, location)
        await _known(conn, tenant, sku)
        before = (await lock(conn, tenant, [(where, sku)]))[(where, sku)]
        if quantity < 0 and before.on_hand + quantity < 0:
            raise ApiError(409, f"{location} has {before.on_hand} of {sku} on hand: an adjustment of {quantity} "
                                "would take it below zero. Count the shelf and adjust by what is missing")
        after = await record(conn, [Movement(tenant, where, sku, kind, quantity, reason=reason)])
        if kind == "adjustment":
            store = await conn.fetchval("SELECT store FROM locations WHERE id = $1", where)
            await audit(conn, Entry(tenant, actor, "stock.adjusted", store=store, target=sku, details={
                "location": location, "sku": sku, "quantity": quantity, "reason": reason,
                "on_hand": after[(where, sku)].on_hand}))
    return balance_view(tenant, location, sku, after[(where, sku)])


async def transfer(conn: asyncpg.Connection, tenant: str, source: str, destination: str, sku: str,
                   quantity: int, reason: str | None) -> dict[str, Any]:
    """Two movements, one transaction: out of `source`, into `destination`."""
    if source == destination:
        raise ApiError(422, f"a transfer moves stock between two locations: from and to are both {source!r}")
    async with conn.transaction():
        origin, target = await _location(conn, tenant, source), await _location(conn, tenant, destination)
        await _known(conn, tenant, sku)
        before = (await lock(conn, tenant, [(origin, sku), (target, sku)]))[(origin, sku)]
        if before.available < quantity:
            raise ApiError(409, f"{source} has {before.available} of {sku} available: it cannot send {quantity}")
        pair = uuid.uuid4()
        after = await record(conn, [
            Movement(tenant, origin, sku, "transfer_out", -quantity, reason=reason, transfer_id=pair),
            Movement(tenant, target, sku, "transfer_in", quantity, reason=reason, transfer_id=pair)])
    return {"transfer": str(pair), "from": balance_view(tenant, source, sku, after[(origin, sku)]),
            "to": balance_view(tenant, destination, sku, after[(target, sku)])}


async def reserve(conn: asyncpg.Connection, tenant: str, location: str, sku: str, quantity: int,
                  expires_in: timedelta, reference: str | None) -> dict[str, Any]:
    async with conn.transaction():
        where = await _location(conn, tenant, location)
        await _known(conn, tenant, sku)
        before = (await lock(conn, tenant, [(where, sku)]))[(where, sku)]
        if before.available < quantity:
            raise ApiError(409, f"{location} has {before.available} of {sku} available: {quantity} cannot be "
                                "reserved. Reserve fewer, or at a nearby location")
        row = await conn.fetchrow(
            "INSERT INTO stock_reservations (tenant, location_id, sku, quantity, reference, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, now() + $6) RETURNING id, expires_at",
            tenant, where, sku, quantity, reference, expires_in)
        after = await record(conn, [Movement(tenant, where, sku, "reserved", 0, quantity, reason=reference,
                                             reservation_id=row["id"])])
    RESERVATIONS.labels("made").inc()
    return {"reservation": row["id"], "expires_at": row["expires_at"].isoformat(),
            **balance_view(tenant, location, sku, after[(where, sku)])}


async def release(conn: asyncpg.Connection, tenant: str, reservation: int) -> dict[str, Any]:
    """Give a reservation's stock back before it expires (the customer collected it or changed their mind)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE stock_reservations r SET status = 'released', ended_at = now() FROM locations l"
            " WHERE r.id = $1 AND r.tenant = $2 AND r.status = 'active' AND l.id = r.location_id"
            " RETURNING r.location_id, r.sku, r.quantity, l.location", reservation, tenant)
        if row is None:
            status = await conn.fetchval(
                "SELECT status FROM stock_reservations WHERE id = $1 AND tenant = $2", reservation, tenant)
            if status is None:
                raise ApiError(404, f"tenant {tenant!r} has no reservation {reservation}")
            raise ApiError(409, f"reservation {reservation} is already {status}: its stock is back")
        key = (row["location_id"], row["sku"])
        after = await record(conn, [Movement(tenant, key[0], key[1], "released", 0, -row["quantity"],
                                             reservation_id=reservation)])
    RESERVATIONS.labels("released").inc()
    return {"reservation": reservation, "status": "released",
            **balance_view(tenant, row["location"], row["sku"], after[key])}


async def expire_due(conn: asyncpg.Connection, most: int) -> int:
    """Expire up to `most` due reservations and restock them, in one transaction; how many expired."""
    async with conn.transaction():
        due = await conn.fetch(EXPIRE_SQL, most)
        if due:
            await record(conn, [Movement(r["tenant"], r["location_id"], r["sku"], "expired", 0, -r["quantity"],
                                         reservation_id=r["id"]) for r in due])
    RESERVATIONS.labels("expired").inc(len(due))
    return len(due)


async def set_threshold(conn: asyncpg.Connection, tenant: str, location: str, sku: str,
                        threshold: int | None) -> dict[str, Any]:
    """Set (or clear, with None) the low-stock threshold; a balance already below a new threshold is a
    crossing, reported like any other."""
    async with conn.transaction():
        where = await _location(conn, tenant, location)
        await _known(conn, tenant, sku)
        before = (await lock(conn, tenant, [(where, sku)]))[(where, sku)]
        low = threshold is not None and before.available < threshold
        await conn.execute("UPDATE stock_balances SET low_threshold = $3, low = $4, updated_at = now()"
                           " WHERE location_id = $1 AND sku = $2", where, sku, threshold, low)
        after = Balance(before.on_hand, before.reserved, threshold, low)
        if low and not before.low:
            await emit_low(conn, [(tenant, (where, sku), after)])
    return balance_view(tenant, location, sku, after)
