"""The stock ledger on real PostgreSQL: sales, transfers, reservations, adjustments and expiries move stock
and balances together, a replay of the ledger finds exactly the balances, and what must be reviewed
(negative stock, unknown SKUs, stores with no floor) is flagged, never refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from hub.inventory import operations
from hub.inventory.sales import move_sold_stock
from novapos.adapters.http import ApiError
from novapos.wire.envelope import Envelope
from tests.stock_world import LEDGER_MISMATCH_SQL, build_world, on_database, sale


async def _sell(pool: asyncpg.Pool, *events: Envelope) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await move_sold_stock(conn, events)


async def _do(pool: asyncpg.Pool, operation: Any, *args: Any) -> dict[str, Any]:
    async with pool.acquire() as conn:
        result: dict[str, Any] = await operation(conn, *args)
        return result


async def _balance(pool: asyncpg.Pool, location: str, sku: str) -> tuple[int, int]:
    row = await pool.fetchrow("SELECT on_hand, reserved FROM stock_balances b JOIN locations l ON l.id = b.location_id"
                              " WHERE l.location = $1 AND b.sku = $2", location, sku)
    return (row["on_hand"], row["reserved"]) if row else (0, 0)


async def test_a_mixed_workload_leaves_balances_the_ledger_replays_exactly(database_url: str) -> None:
    await build_world(database_url)

    async def workload(pool: asyncpg.Pool) -> dict[str, Any]:
        await _do(pool, operations.change, "demo", "s1-floor", "COF-250", "received", 10, "delivery 1")
        await _do(pool, operations.change, "demo", "wh-north", "COF-250", "received", 50, None)
        await _sell(pool, sale([("COF-250", 2), ("COF-500", 1)]), sale([("COF-250", 1)], version=2, seq=2),
                    sale([("COF-250", 4)], store="store-002"))
        moved = await _do(pool, operations.transfer, "demo", "wh-north", "s1-floor", "COF-250", 5, "top-up")
        kept = await _do(pool, operations.reserve, "demo", "s1-floor", "COF-250", 3, timedelta(hours=1), "order 7")
        dropped = await _do(pool, operations.reserve, "demo", "s1-floor", "COF-250", 2, timedelta(hours=1), None)
        await _do(pool, operations.release, "demo", dropped["reservation"])
        await _do(pool, operations.reserve, "demo", "wh-north", "COF-250", 4, timedelta(seconds=-1), "gone")
        async with pool.acquire() as conn:
            expired = await operations.expire_due(conn, 100)
            expired_again = await operations.expire_due(conn, 100)
        await _do(pool, operations.change, "demo", "s1-floor", "COF-250", "adjustment", -1, "damaged in transit")
        await _do(pool, operations.change, "demo", "s1-floor", "COF-250", "return", 1, None)
        return {
            "s1": await _balance(pool, "s1-floor", "COF-250"), "wh": await _balance(pool, "wh-north", "COF-250"),
            "s2": await _balance(pool, "s2-floor", "COF-250"), "s1_500": await _balance(pool, "s1-floor", "COF-500"),
            "transfer": await pool.fetch("SELECT kind, on_hand_change FROM stock_movements WHERE transfer_id = $1"
                                         " ORDER BY kind", uuid.UUID(moved["transfer"])),
            "expired": (expired, expired_again), "kept": kept,
            "statuses": sorted(r["status"] for r in await pool.fetch("SELECT status FROM stock_reservations")),
            "mismatch": await pool.fetch(LEDGER_MISMATCH_SQL),
            "movements": await pool.fetchval("SELECT count(*) FROM stock_movements"),
        }
    found = await on_database(database_url, workload)
    assert found["s1"] == (10 - 3 + 5 - 1 + 1, 3)  # received, sold, transferred in, damaged, returned; 3 held
    assert found["wh"] == (45, 0) and found["s2"] == (-4, 0) and found["s1_500"] == (-1, 0)
    assert [tuple(r) for r in found["transfer"]] == [("transfer_in", 5), ("transfer_out", -5)]
    assert found["expired"] == (1, 0), "a due reservation expires once"
    assert found["kept"]["available"] == 12 - 3 and found["kept"]["reserved"] == 3
    assert found["statuses"] == ["active", "expired", "released"]
    assert found["mismatch"] == [], "the ledger does not replay to the balances"
    # received 2, sale lines 4, transfer 2, reserved 3, released 1, expired 1, adjustment 1, return 1
    assert found["movements"] == 2 + 4 + 2 + 3 + 1 + 1 + 1 + 1


async def test_sales_that_cannot_be_placed_still_land_flagged_and_negative_stock_is_flagged(database_url: str) -> None:
    await build_world(database_url)

    async def run(pool: asyncpg.Pool) -> dict[str, Any]:
        await _do(pool, operations.change, "demo", "s1-floor", "COF-250", "received", 2, None)
        await _sell(pool, sale([("COF-250", 5), ("NOPE-1", 1)]), sale([("COF-250", 1)], store="store-bare"),
                    sale([("COF-1K", 1)], store="never-provisioned", seq=9))
        rows = await pool.fetch("SELECT m.store, m.sku, l.location, m.on_hand_change, m.flags FROM stock_movements m"
                                " LEFT JOIN locations l ON l.id = m.location_id WHERE m.kind = 'sale' ORDER BY m.id")
        balance = await pool.fetchrow("SELECT on_hand, negative_since FROM stock_balances b JOIN locations l"
                                      " ON l.id = b.location_id WHERE l.location = 's1-floor' AND sku = 'COF-250'")
        return {"rows": [tuple(r) for r in rows], "balance": balance, "mismatch": await pool.fetch(LEDGER_MISMATCH_SQL),
                "unknown": await _balance(pool, "s1-floor", "NOPE-1")}
    found = await on_database(database_url, run)
    assert found["rows"] == [
        ("store-001", "COF-250", "s1-floor", -5, ["negative"]),
        ("store-001", "NOPE-1", "s1-floor", -1, ["unknown_sku", "negative"]),
        ("store-bare", "COF-250", None, -1, ["no_location"]),
        ("never-provisioned", "COF-1K", None, -1, ["no_location"]),
    ]
    assert found["balance"]["on_hand"] == -3 and found["balance"]["negative_since"] is not None
    assert found["unknown"] == (-1, 0) and found["mismatch"] == []


@pytest.mark.parametrize(("operation", "args", "status", "says"), [
    (operations.change, ("demo", "s1-floor", "COF-250", "adjustment", -11, "count"), 409, "below zero"),
    (operations.change, ("demo", "o1-floor", "COF-250", "received", 1, None), 422, "no location 'o1-floor'"),
    (operations.change, ("demo", "s1-floor", "OTH-1", "received", 1, None), 422, "not in tenant 'demo'"),
    (operations.transfer, ("demo", "s1-floor", "s1-floor", "COF-250", 1, None), 422, "both 's1-floor'"),
    (operations.transfer, ("demo", "s1-floor", "s2-floor", "COF-250", 11, None), 409, "cannot send 11"),
    (operations.reserve, ("demo", "s1-floor", "COF-250", 11, timedelta(hours=1), None), 409, "cannot be reserved"),
    (operations.release, ("demo", 424242), 404, "no reservation 424242"),
])
async def test_a_refused_change_says_why_and_changes_nothing(
        database_url: str, operation: Any, args: tuple[Any, ...], status: int, says: str) -> None:
    await build_world(database_url)

    async def run(pool: asyncpg.Pool) -> tuple[ApiError | None, list[Any], list[Any]]:
        await _do(pool, operations.change, "demo", "s1-floor", "COF-250", "received", 10, None)
        snapshot = "SELECT location_id, sku, on_hand, reserved FROM stock_balances ORDER BY 1, 2"
        before = [tuple(r) for r in await pool.fetch(snapshot)] + [await pool.fetchval(
            "SELECT count(*) FROM stock_movements")]
        try:
            await _do(pool, operation, *args)
            refusal = None
        except ApiError as exc:
            refusal = exc
        after = [tuple(r) for r in await pool.fetch(snapshot)] + [await pool.fetchval(
            "SELECT count(*) FROM stock_movements")]
        return refusal, before, after
    refusal, before, after = await on_database(database_url, run)
    assert refusal is not None and refusal.status == status and says in refusal.message, refusal
    assert after == before


async def test_a_released_reservation_cannot_be_released_or_expired_again(database_url: str) -> None:
    await build_world(database_url)

    async def run(pool: asyncpg.Pool) -> tuple[int, str, tuple[int, int]]:
        await _do(pool, operations.change, "demo", "s1-floor", "COF-250", "received", 3, None)
        made = await _do(pool, operations.reserve, "demo", "s1-floor", "COF-250", 3, timedelta(seconds=-1), None)
        await _do(pool, operations.release, "demo", made["reservation"])
        try:
            await _do(pool, operations.release, "demo", made["reservation"])
            said = ""
        except ApiError as exc:
            said = f"{exc.status} {exc.message}"
        async with pool.acquire() as conn:
            expired = await operations.expire_due(conn, 10)
        return expired, said, await _balance(pool, "s1-floor", "COF-250")
    expired, said, balance = await on_database(database_url, run)
    assert expired == 0 and said.startswith("409") and "already released" in said
    assert balance == (3, 0)


async def test_two_sweepers_side_by_side_expire_each_due_reservation_once(database_url: str) -> None:
    """As N hubs do: FOR UPDATE SKIP LOCKED hands each due reservation to one sweeper."""
    await build_world(database_url)

    async def run(pool: asyncpg.Pool) -> tuple[list[int], int, tuple[int, int], list[Any]]:
        for location in ("s1-floor", "s2-floor", "wh-north"):
            await _do(pool, operations.change, "demo", location, "COF-250", "received", 100, None)
        for number in range(240):
            location = ("s1-floor", "s2-floor", "wh-north")[number % 3]
            await _do(pool, operations.reserve, "demo", location, "COF-250", 1, timedelta(seconds=-1), None)

        async def sweep() -> int:
            total = 0
            async with pool.acquire() as conn:
                while expired := await operations.expire_due(conn, 7):
                    total += expired
            return total
        counts = list(await asyncio.gather(sweep(), sweep()))
        expired_movements = await pool.fetchval("SELECT count(*) FROM stock_movements WHERE kind = 'expired'")
        return counts, expired_movements, await _balance(pool, "s1-floor", "COF-250"), \
            await pool.fetch(LEDGER_MISMATCH_SQL)
    counts, expired_movements, balance, mismatch = await on_database(database_url, run)
    assert sum(counts) == 240 and expired_movements == 240, counts  # none expired (and restocked) twice
    assert balance == (100, 0) and mismatch == []


async def test_two_writers_selling_the_same_items_in_opposite_orders_never_deadlock(database_url: str) -> None:
    """As two hub processes applying batches side by side: one sells its lines in one order, the other in
    the reverse. Balances are locked in (location, sku) order whatever the lines' order, so they only wait."""
    await build_world(database_url)
    skus = ["COF-250", "COF-500", "COF-1K", *(f"NEW-{n:03}" for n in range(400))]  # many rows: long statements
    forward = [[sale([(sku, 1) for sku in skus], seq=n, store=store) for store in ("store-001", "store-002")]
               for n in range(1, 16)]
    backward = [[sale([(sku, 1) for sku in reversed(skus)], seq=n, store=store)
                 for store in ("store-002", "store-001")] for n in range(16, 31)]

    async def run(pool: asyncpg.Pool) -> tuple[list[Any], list[Any]]:
        async def writer(batches: list[list[Envelope]]) -> None:
            async with pool.acquire() as conn:
                for batch in batches:
                    async with conn.transaction():
                        await move_sold_stock(conn, batch)
                        await asyncio.sleep(0.005)  # hold the locks a little, as a real batch's other work does
        await asyncio.gather(writer(forward), writer(backward))
        balances = await pool.fetch("SELECT DISTINCT on_hand FROM stock_balances")
        return [tuple(r) for r in balances], await pool.fetch(LEDGER_MISMATCH_SQL)
    balances, mismatch = await on_database(database_url, run)
    assert balances == [(-30,)] and mismatch == []  # every SKU at both floors: 30 sales of one each
