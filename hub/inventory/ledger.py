"""The stock ledger: movements recorded with the balances they change, in the caller's transaction.

Every change of stock (a sale, a transfer, a reservation...) goes through `record`, set-based: one upsert of
the balances, one COPY of the movements, and (only when a threshold was crossed) one insert of low-stock
events. Balance rows are upserted sorted by (location_id, sku), the one lock order every writer follows,
so that hub processes applying batches concurrently wait for each other but never deadlock; a writer
that must look at a balance before changing it locks it first with `lock`, in the same order.

A balance's `low` flag is kept equal to "available < threshold" at every change, so a crossing (low turning
true) is seen exactly once: further sales below the threshold change nothing, and a rise back above re-arms it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

Key = tuple[int, str]
"""(location_id, sku): a balance, and the order its rows are locked in."""

UPSERT_SQL = (
    "INSERT INTO stock_balances AS b (location_id, sku, tenant, on_hand, reserved, negative_since)"
    " SELECT l, s, t, d_on, d_res, CASE WHEN d_on < 0 THEN now() END"
    " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS u(l, s, t, d_on, d_res)"
    " ORDER BY l, s"
    " ON CONFLICT (location_id, sku) DO UPDATE SET on_hand = b.on_hand + EXCLUDED.on_hand,"
    "  reserved = b.reserved + EXCLUDED.reserved,"
    "  low = b.low_threshold IS NOT NULL AND"
    "   (b.on_hand + EXCLUDED.on_hand) - (b.reserved + EXCLUDED.reserved) < b.low_threshold,"
    "  negative_since = CASE WHEN b.on_hand + EXCLUDED.on_hand < 0 THEN coalesce(b.negative_since, now()) END,"
    "  updated_at = now()"
    " RETURNING location_id, sku, on_hand, reserved, low_threshold, low")
LOCK_SQL = (
    "INSERT INTO stock_balances AS b (location_id, sku, tenant)"
    " SELECT l, s, t FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(l, s, t) ORDER BY l, s"
    " ON CONFLICT (location_id, sku) DO UPDATE SET updated_at = b.updated_at"
    " RETURNING location_id, sku, on_hand, reserved, low_threshold, low")
LOW_EVENTS_SQL = (
    "INSERT INTO stock_low_events (tenant, location_id, sku, available, threshold)"
    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[])")
MOVEMENT_COLUMNS = ["tenant", "location_id", "sku", "kind", "on_hand_change", "reserved_change", "reason",
                    "store", "event_id", "line_no", "reservation_id", "transfer_id", "flags"]


@dataclass(frozen=True)
class Movement:
    tenant: str
    location_id: int | None
    """None only for a sale from a store that has no floor location: it lands, flagged, in no balance."""
    sku: str
    kind: str
    on_hand_change: int
    reserved_change: int = 0
    reason: str | None = None
    store: str | None = None
    event_id: uuid.UUID | None = None
    line_no: int | None = None
    reservation_id: int | None = None
    transfer_id: uuid.UUID | None = None
    flags: tuple[str, ...] = ()

    def row(self, flags: tuple[str, ...]) -> tuple[object, ...]:
        return (self.tenant, self.location_id, self.sku, self.kind, self.on_hand_change, self.reserved_change,
                self.reason, self.store, self.event_id, self.line_no, self.reservation_id, self.transfer_id,
                list(flags))


@dataclass(frozen=True)
class Balance:
    on_hand: int
    reserved: int
    low_threshold: int | None
    low: bool

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def _balances(rows: Iterable[asyncpg.Record]) -> dict[Key, Balance]:
    return {(row["location_id"], row["sku"]): Balance(row["on_hand"], row["reserved"], row["low_threshold"],
                                                      row["low"]) for row in rows}


async def lock(conn: asyncpg.Connection, tenant: str, keys: Iterable[Key]) -> dict[Key, Balance]:
    """Lock the balances of `keys` (created at zero when missing) in the one order, and read them."""
    ordered = sorted(set(keys))
    return _balances(await conn.fetch(LOCK_SQL, [k[0] for k in ordered], [k[1] for k in ordered],
                                      [tenant] * len(ordered)))


async def record(conn: asyncpg.Connection, movements: Sequence[Movement]) -> dict[Key, Balance]:
    """Write `movements` and their balances; returns the balances after them."""
    changes: dict[Key, tuple[str, int, int]] = {}
    for m in movements:
        if m.location_id is not None:
            _, on_hand, reserved = changes.get((m.location_id, m.sku), (m.tenant, 0, 0))
            changes[(m.location_id, m.sku)] = (m.tenant, on_hand + m.on_hand_change, reserved + m.reserved_change)
    keys = sorted(changes)
    after = _balances(await conn.fetch(
        UPSERT_SQL, [k[0] for k in keys], [k[1] for k in keys], [changes[k][0] for k in keys],
        [changes[k][1] for k in keys], [changes[k][2] for k in keys])) if keys else {}
    rows = []
    for m in movements:
        balance = after.get((m.location_id, m.sku)) if m.location_id is not None else None
        negative = balance is not None and m.on_hand_change < 0 and balance.on_hand < 0
        rows.append(m.row((*m.flags, "negative") if negative else m.flags))
    await conn.copy_records_to_table("stock_movements", records=rows, columns=MOVEMENT_COLUMNS)
    crossed = [(key, balance) for key, balance in after.items()
               if balance.low and not _was_low(balance, changes[key][1] - changes[key][2])]
    await emit_low(conn, [(changes[key][0], key, balance) for key, balance in crossed])
    return after


def _was_low(after: Balance, available_change: int) -> bool:
    """Whether the balance was low before a change of `available_change` (low is kept exact at every change)."""
    return after.low_threshold is not None and after.available - available_change < after.low_threshold


async def emit_low(conn: asyncpg.Connection, crossed: Sequence[tuple[str, Key, Balance]]) -> None:
    """One low-stock event per crossing; hub.inventory.services publishes them on NATS after the commit."""
    if crossed:
        await conn.execute(LOW_EVENTS_SQL, [tenant for tenant, _, _ in crossed], [key[0] for _, key, _ in crossed],
                           [key[1] for _, key, _ in crossed], [b.available for _, _, b in crossed],
                           [b.low_threshold for _, _, b in crossed])
