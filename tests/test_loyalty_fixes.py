"""The loyalty review's findings, each on real PostgreSQL through the appliers as the ingest runs them: points per
order on a small sale are shared and never crash the ingest; a used redemption asked again is refused and one sold
again is debited again and counted; a return takes its own sale's points first; a void gives points back into the
lots they came from (never a fresh expiry) and expired ones are not resurrected; an absurd offline redemption is
clamped, not an overflow; the hub counts a points tender whose value or offline limits differ from the program's;
tier spend counts the same thing on a sale and its return; adjustments have a ceiling and post once per entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from hub.loyalty import accounts, adjustments, redemptions
from hub.loyalty import program as programs
from hub.loyalty.metrics import CORRECTIONS
from hub.loyalty.redemptions import Redemption
from hub.loyalty.upkeep import retier_due
from hub.refusals import Refused
from novapos.pricing import share
from tests.loyalty_support import ALICE, BOB, apply, balance_and_ledger, customer_return, customer_sale, in_loyalty
from tests.test_loyalty_ledger import PROGRAM


def _corrections(reason: str) -> float:
    return float(CORRECTIONS.labels(reason)._value.get())


async def _program(pool: asyncpg.Pool, **changes: object) -> None:
    async with pool.acquire() as conn:
        await programs.save(conn, "demo", programs.from_json("EUR", {**PROGRAM, **changes}), "test")


async def _redeem(pool: asyncpg.Pool, redemption: str, points: int, *, store: str = "store-001") -> object:
    async with pool.acquire() as conn:
        try:
            return await redemptions.redeem(conn, "demo", store, Redemption(redemption, ALICE, points, "till-1", "bob"))
        except Refused as refused:
            return refused


async def _lots(pool: asyncpg.Pool) -> list[tuple[int, int, datetime | None]]:
    rows = await pool.fetch("SELECT points, remaining, expires_at FROM loyalty_lots WHERE customer = $1"
                            " ORDER BY earned_at, id", ALICE)
    return [(int(row["points"]), int(row["remaining"]), row["expires_at"]) for row in rows]


def test_share_gives_any_total_over_any_amounts_by_the_largest_remainder() -> None:
    assert share(100, [50]) == [100]  # more than the amounts: allocate would raise
    assert share(10, [1, 1, 1]) == [4, 3, 3]
    assert share(7, [300, 100]) == [5, 2]  # 5.25 / 1.75: the larger remainder gets the unit left
    assert share(5, [0, 0]) == [3, 2] and share(0, []) == [] and share(0, [5, 0]) == [0, 0]
    assert sum(share(10**12, [1, 2, 3, 5])) == 10**12
    with pytest.raises(ValueError):
        share(-1, [1])


def test_points_per_order_on_a_small_sale_are_earned_instead_of_crashing_the_ingest(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool, earn_per_order_points=100, earn_bonuses=[])
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 50)]))  # 0.50: 0 base + 100 per order
        assert await balance_and_ledger(pool, ALICE) == (100, 100, 100)
        await _program(pool, earn_per_order_points=0, earn_bonuses=[], earn_points_per_unit=2, earn_unit_minor=1)
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 30), ("COF-250", 1, 20)]))  # 2 points per cent
        assert await balance_and_ledger(pool, ALICE) == (200, 200, 200)
        earned = await pool.fetch("SELECT points FROM loyalty_earnings WHERE quantity = 1 ORDER BY order_id, line")
        assert [row["points"] for row in earned] == [100, 60, 40]
    in_loyalty(database_url, work)


def test_a_used_redemption_asked_again_is_refused_and_sold_again_is_debited_and_counted(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 100_00)]))  # 100 points
        assert isinstance(await _redeem(pool, "r1", 40), dict)
        moved = await _redeem(pool, "r1", 40, store="store-002")  # another store under a held id
        assert isinstance(moved, Refused) and moved.code == 409
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 40)], points=("r1", 40, False)))
        again = await _redeem(pool, "r1", 40)  # the same request after its sale: no silent success
        assert isinstance(again, Refused) and again.code == 409 and "already paid" in str(again)
        assert await balance_and_ledger(pool, ALICE) == (60, 60, 60)
        reused = _corrections("reused_redemption")
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 40)], points=("r1", 40, False)))  # another sale
        assert await balance_and_ledger(pool, ALICE) == (20, 20, 20)
        assert _corrections("reused_redemption") == reused + 1
    in_loyalty(database_url, work)


def test_a_return_takes_its_own_sales_points_and_a_void_never_extends_expiry(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        almost_a_year = int((datetime.now(UTC) - timedelta(days=364)).timestamp() * 1000)
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 100_00)], ts=almost_a_year))  # L1: 100, expiring
        sale = customer_sale(ALICE, [("COF-250", 1, 100_00)])  # L2: 100
        await apply(pool, sale)
        await apply(pool, customer_return(sale, [(1, 1)]))
        (first, left1, expires1), (_, left2, _) = await _lots(pool)
        assert (first, left1, left2) == (100, 100, 0)  # the returned sale's lot, not the oldest one
        # redeem 60 of the points expiring in a day, void: they come back into that lot, not a fresh one
        assert isinstance(await _redeem(pool, "v1", 60), dict)
        async with pool.acquire() as conn:
            await redemptions.reverse(conn, "demo", "store-001", "v1", "bob", "void")
        assert await _lots(pool) == [(100, 100, expires1), (100, 0, (await _lots(pool))[1][2])]
        assert await balance_and_ledger(pool, ALICE) == (100, 100, 100)
        # redeem again, the lot expires meanwhile, void: its points are not resurrected
        assert isinstance(await _redeem(pool, "v2", 60), dict)
        await pool.execute("UPDATE loyalty_lots SET expires_at = now() - interval '1 second' WHERE expires_at = $1",
                           expires1)
        async with pool.acquire() as conn:
            await redemptions.reverse(conn, "demo", "store-001", "v2", "bob", "void")
        assert await balance_and_ledger(pool, ALICE) == (40, 40, 40)
        assert len(await _lots(pool)) == 2  # no fresh lot
    in_loyalty(database_url, work)


def test_a_refund_to_points_goes_back_into_the_lots_the_sale_took(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 100_00)]))
        (_, _, expires), = await _lots(pool)
        assert isinstance(await _redeem(pool, "p1", 30), dict)
        sale = customer_sale(ALICE, [("COF-250", 1, 30)], points=("p1", 30, False))
        await apply(pool, sale)
        await apply(pool, customer_return(sale, [(1, 1)], refund_points=30))
        assert await _lots(pool) == [(100, 100, expires)]
        assert await balance_and_ledger(pool, ALICE) == (100, 100, 100)
    in_loyalty(database_url, work)


def test_the_hub_counts_a_points_tender_off_the_programs_value_or_limits_and_clamps_absurd_ones(
        database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool, earn_bonuses=[], earn_per_order_points=0, offline_customer_cap_points=100,
                       offline_store_budget_points=150)
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 1000_00)]))  # 1000 points
        before = {reason: _corrections(reason) for reason in ("value_differs", "over_cap", "over_budget", "clamped")}
        # an outage at store-001: three sales made before the hub receives any of them
        stale = customer_sale(ALICE, [("MILK-1L", 1, 200)], points=("o1", 80, True))
        stale.body["tenders"][0]["amount"]["minor"] = 160  # the till's point value was 2, the program's is 1
        second = customer_sale(ALICE, [("MILK-1L", 1, 50)], points=("o2", 50, True))  # 130 for Alice
        third = customer_sale(BOB, [("MILK-1L", 1, 40)], points=("o3", 40, True))  # 170 at the store
        for sale in (stale, second, third):
            await apply(pool, sale)
        after = customer_sale(BOB, [("MILK-1L", 1, 40)], points=("o5", 40, True))  # sold once the hub had those
        await apply(pool, after)
        assert {reason: _corrections(reason) - count for reason, count in before.items()} == {
            "value_differs": 1, "over_cap": 1, "over_budget": 1, "clamped": 0}
        assert (await balance_and_ledger(pool, ALICE))[0] == 1000 - 130
        # an absurd offline redemption: clamped and counted, and the ingest goes on (a later sale still earns)
        absurd = customer_sale(ALICE, [("MILK-1L", 1, 1)], points=("o4", 1, True), store="store-002")
        absurd.body["tenders"][0]["points"]["points"] = 2**62  # well-formed: the wire allows up to 2^63-1
        await apply(pool, absurd)
        assert (await balance_and_ledger(pool, ALICE))[:2] == (-accounts.MAX_BALANCE, -accounts.MAX_BALANCE)
        assert _corrections("clamped") == before["clamped"] + 1
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 100_00)]))
        assert (await balance_and_ledger(pool, ALICE))[0] == -accounts.MAX_BALANCE + 150  # 100 at Gold (x1.5)
    in_loyalty(database_url, work)


def test_tier_spend_counts_the_same_on_a_sale_and_its_return(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        async def spend() -> int:
            return int(await pool.fetchval("SELECT spend_12m_minor FROM loyalty_accounts WHERE customer = $1", ALICE))
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 300_00)]))
        assert await spend() == 300_00
        paid_in_points = customer_sale(ALICE, [("COF-250", 1, 100)], points=("all", 100, True))
        await apply(pool, paid_in_points)
        await apply(pool, customer_return(paid_in_points, [(1, 1)]))
        assert await spend() == 300_00  # counted 0, returned 0: no drop
        taxed = customer_sale(ALICE, [("COF-250", 2, 1200)])
        for line in taxed.body["lines"]:
            line["tax"] = {"class": "food", "rate_ppm": 200_000, "included": True, "amount": {"minor": 400,
                                                                                                "currency": "EUR"}}
        await apply(pool, taxed)
        assert await spend() == 300_00 + 2000  # without the tax
        await apply(pool, customer_return(taxed, [(1, 1)]))
        assert await spend() == 300_00 + 1000
    in_loyalty(database_url, work)


def test_an_adjustment_has_a_ceiling_and_posts_once_per_entry(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool, adjust_max_points=500)
        with pytest.raises(Refused) as refused:
            await adjustments.adjust(pool, "demo", ALICE, 501, "goodwill", "admin")
        assert refused.value.code == 409 and "500" in str(refused.value)
        entry = uuid.uuid4().hex
        for _ in range(2):  # the same request again (its answer was lost): posted once
            summary = await adjustments.adjust(pool, "demo", ALICE, 300, "goodwill", "admin", entry)
            assert summary["points"] == 300
        assert await balance_and_ledger(pool, ALICE) == (300, 300, 300)
        audits = await pool.fetchval("SELECT count(*) FROM audit_records WHERE action = 'loyalty.adjusted'")
        assert audits == 1
        async with pool.acquire() as conn:  # a program saved without the setting keeps the default
            assert (await programs.load(conn, "demo")).adjust_max_points == 500
        assert programs.from_json("EUR", PROGRAM).adjust_max_points == programs.DEFAULT.adjust_max_points
    in_loyalty(database_url, work)


def test_a_return_is_reversed_by_the_sales_earnings_alone_even_when_it_arrives_first(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        sale = customer_sale(ALICE, [("MILK-1L", 2, 50_00)])  # 100 points
        await apply(pool, sale)
        anonymous = customer_return(sale, [(1, 1)])
        del anonymous.body["customer"]  # a return that does not name the customer: the sale's earnings do
        await apply(pool, anonymous)
        assert await balance_and_ledger(pool, ALICE) == (50, 50, 50)
        # sold offline at store-002, returned at store-001 before the sale reached the hub
        early = customer_sale(BOB, [("COF-250", 4, 10_00)], store="store-002")  # 40 points
        await apply(pool, customer_return(early, [(1, 3)]))
        assert await pool.fetchval("SELECT count(*) FROM loyalty_pending_returns") == 1
        await apply(pool, early)
        assert await balance_and_ledger(pool, BOB) == (10, 10, 10)
        assert await pool.fetchval("SELECT count(*) FROM loyalty_pending_returns") == 0
        assert await pool.fetchval("SELECT spend_12m_minor FROM loyalty_accounts WHERE customer = $1", BOB) == 10_00
    in_loyalty(database_url, work)


def test_new_tiers_apply_to_the_next_earning_and_every_account_is_retiered(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool, earn_bonuses=[], earn_per_order_points=0)
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 10_00)]))  # 10 points, 10.00 spent: Member
        tiers = [{"name": "Member", "min_spend_minor": 0, "multiplier_ppm": 1_000_000},
                 {"name": "Gold", "min_spend_minor": 500, "multiplier_ppm": 2_000_000}]
        current = programs.from_json("EUR", {**PROGRAM, "earn_bonuses": [], "earn_per_order_points": 0})
        await adjustments.change_program(pool, "demo", programs.from_json("EUR", {**current.to_json(),
                                                                                 "tiers": tiers}), "admin")
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 10_00)]))  # at Gold at once: 20 points
        assert await balance_and_ledger(pool, ALICE) == (30, 30, 30)
        await apply(pool, customer_sale(BOB, [("MILK-1L", 1, 1_00)]))
        await adjustments.change_program(pool, "demo", current, "admin")
        assert await retier_due(pool) == 2  # both accounts due again after a change of tiers
    in_loyalty(database_url, work)
