"""Points redemptions on real PostgreSQL: fifty concurrent redemptions on one account never overspend and leave a
ledger that sums to the balance; an offline day of redemptions at one store, while the customer spends the same
points online at another, is reconciled exactly when its sales arrive (each redemption debited once, the balance
below zero counted as a correction, replays counted once) and later earnings pay the debt back first; a void gives
held points back and a sold redemption cannot be reversed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from hub.loyalty import accounts, redemptions
from hub.loyalty.metrics import CORRECTIONS
from hub.loyalty.redemptions import Redemption
from hub.refusals import Refused
from tests.loyalty_support import ALICE, BOB, apply, balance_and_ledger, customer_sale, in_loyalty


async def _give(pool: asyncpg.Pool, points: int, customer: object = ALICE) -> None:
    """Points for the customer, earned on a sale (1 point per 1.00)."""
    await apply(pool, customer_sale(customer, [("MILK-1L", 1, points * 100)]))  # type: ignore[arg-type]


async def _redeem(pool: asyncpg.Pool, redemption: str, points: int, *, store: str = "store-001",
                  customer: object = ALICE) -> dict[str, object] | Refused:
    async with pool.acquire() as conn:
        try:
            return await redemptions.redeem(conn, "demo", store, Redemption(redemption, customer, points,  # type: ignore[arg-type]
                                                                            "till-1", "bob"))
        except Refused as refused:
            return refused


def test_fifty_concurrent_redemptions_on_one_account_never_overspend(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _give(pool, 1000)
        answers = await asyncio.gather(*(_redeem(pool, f"r{n}", 30) for n in range(50)))
        taken = [answer for answer in answers if isinstance(answer, dict)]
        refused = [answer for answer in answers if isinstance(answer, Refused)]
        assert (len(taken), len(refused)) == (33, 17)  # 33 x 30 = 990 <= 1000 < 34 x 30
        assert {refusal.code for refusal in refused} == {409}
        assert "has 10 points" in str(refused[-1])
        assert await balance_and_ledger(pool, ALICE) == (10, 10, 10)
        assert sorted(answer["balance"] for answer in taken) == list(range(10, 1000, 30))  # type: ignore[type-var]
        # the same fifty again (a till retrying every one): the 33 answer the same, nothing more is taken
        again = await asyncio.gather(*(_redeem(pool, f"r{n}", 30) for n in range(50)))
        assert sum(isinstance(answer, dict) for answer in again) == 33
        assert await balance_and_ledger(pool, ALICE) == (10, 10, 10)
        reused = await _redeem(pool, "r0", 31)  # another request under a used id
        assert isinstance(reused, Refused) and reused.code == 409
    in_loyalty(database_url, work, pool_size=20)


def test_a_void_gives_held_points_back_and_a_sold_redemption_stays(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _give(pool, 100)
        await _redeem(pool, "held", 40)
        async with pool.acquire() as conn:
            assert await redemptions.reverse(conn, "demo", "store-001", "held", "bob", "void") == {
                "redemption": "held", "reversed": True}
            assert await redemptions.reverse(conn, "demo", "store-001", "held", "bob", "void") == {
                "redemption": "held", "reversed": True}  # again: once
        assert await balance_and_ledger(pool, ALICE) == (100, 100, 100)
        late = await _redeem(pool, "held", 40)  # the reversed id cannot take points again
        assert isinstance(late, Refused) and late.code == 409
        async with pool.acquire() as conn:  # a reversal that overtook its redemption: the id is spent
            await redemptions.reverse(conn, "demo", "store-001", "never-seen", "bob", "void")
        assert isinstance(await _redeem(pool, "never-seen", 10), Refused)

        answer = await _redeem(pool, "sold", 25)
        assert isinstance(answer, dict) and answer["value_minor"] == 25 and answer["currency"] == "EUR"
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 100)], points=("sold", 25, False)))
        state = await pool.fetchval("SELECT state FROM loyalty_redemptions WHERE redemption = 'sold'")
        assert state == "used"
        async with pool.acquire() as conn:
            with pytest.raises(Refused) as refused:
                await redemptions.reverse(conn, "demo", "store-001", "sold", "bob", "void")
            assert refused.value.code == 409
            with pytest.raises(Refused) as elsewhere:  # another store cannot reverse this store's redemption
                await redemptions.reverse(conn, "demo", "store-002", "sold", "bob", "void")
            assert elsewhere.value.code == 404
        # 100 - 25 + (1.00 - 0.25 paid by points: 0 points, 75 minor floored)
        assert await balance_and_ledger(pool, ALICE) == (75, 75, 75)
        unknown = await _redeem(pool, "x", 5, customer=BOB)  # Bob has no points
        assert isinstance(unknown, Refused) and "has 0 points" in str(unknown)
    in_loyalty(database_url, work)


def test_an_offline_day_of_redemptions_is_reconciled_exactly_and_replays_count_once(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _give(pool, 1000)
        await _give(pool, 100, customer=BOB)
        # the day at store-001, offline: 20 sales each paid by 30 points (within its budget and Alice's cap) ...
        offline = [customer_sale(ALICE, [("MILK-1L", 1, 30)], points=(f"off-{n}", 30, True)) for n in range(20)]
        offline.append(customer_sale(BOB, [("MILK-1L", 1, 50)], points=("off-bob", 50, True)))
        # ... while Alice redeems 600 online at store-002, so only 400 are left when the offline sales arrive
        assert isinstance(await _redeem(pool, "online-1", 600, store="store-002"), dict)
        overspends = CORRECTIONS.labels("offline_overspend")._value.get()
        for start in range(0, len(offline), 7):  # they arrive in batches, as the ingest applies them
            await apply(pool, *offline[start:start + 7])
        assert await balance_and_ledger(pool, ALICE) == (-200, -200, 0)  # 1000 - 600 - 600: the debt is recorded
        assert await balance_and_ledger(pool, BOB) == (50, 50, 50)
        negative = CORRECTIONS.labels("offline_overspend")._value.get() - overspends
        assert negative == 7  # the 14th to the 20th redemption took Alice below zero
        debits = await pool.fetch("SELECT key, points FROM loyalty_ledger WHERE customer = $1 AND kind = 'redeem'",
                                  ALICE)
        assert sorted(row["key"] for row in debits) == sorted([f"off-{n}" for n in range(20)] + ["online-1"])

        await apply(pool, *offline)  # the whole day again (a store resending it, or a second hub's inbox)
        assert await balance_and_ledger(pool, ALICE) == (-200, -200, 0)
        assert CORRECTIONS.labels("offline_overspend")._value.get() - overspends == negative
        assert await pool.fetchval("SELECT count(*) FROM loyalty_redemptions WHERE offline") == 21

        await _give(pool, 250)  # 250 x 1.25 (Silver since her 1,000.00) = 313, of which 200 pay the debt first
        assert await balance_and_ledger(pool, ALICE) == (113, 113, 113)
        async with pool.acquire() as conn:
            assert (await accounts.summary(conn, "demo", ALICE))["points"] == 113
    in_loyalty(database_url, work)


def test_a_sale_that_uses_a_reversed_redemption_is_debited_once_as_a_correction(database_url: str) -> None:
    """A void reversed the redemption, yet the sale completed with it (the till's void raced its own sale): the
    sale is the truth, so the points are taken again, once, and counted."""
    async def work(pool: asyncpg.Pool) -> None:
        await _give(pool, 100)
        await _redeem(pool, "raced", 30)
        async with pool.acquire() as conn:
            await redemptions.reverse(conn, "demo", "store-001", "raced", "bob", "void")
        before = CORRECTIONS.labels("reversed_then_sold")._value.get()
        sale = customer_sale(ALICE, [("MILK-1L", 1, 30)], points=("raced", 30, False))
        await apply(pool, sale)
        await apply(pool, sale)  # again: once
        assert await balance_and_ledger(pool, ALICE) == (70, 70, 70)
        assert CORRECTIONS.labels("reversed_then_sold")._value.get() - before == 1
        keys = await pool.fetch("SELECT key, points FROM loyalty_ledger WHERE key LIKE '%raced' ORDER BY at, id")
        assert [(row["key"], row["points"]) for row in keys] == [("raced", -30), ("reversed:raced", 30),
                                                                 ("sold:raced", -30)]
    in_loyalty(database_url, work)
