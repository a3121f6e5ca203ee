"""The loyalty ledger on real PostgreSQL, through the appliers as the ingest runs them: a sale earns by the program
x the tier's multiplier; a partial refund reverses exactly what the returned units earned (and all the returns of
a sale exactly what it earned); expiry takes the oldest lot first and the notice shows what expires soon; tiers
follow the rolling 12-month spend; an account's balance always equals its ledger's sum."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from hub.loyalty import accounts, privacy, redemptions
from hub.loyalty import program as programs
from hub.loyalty.demo import seed_demo_loyalty
from hub.loyalty.redemptions import Redemption
from hub.loyalty.sales import apply_returns
from hub.loyalty.upkeep import expire_due, retier_due
from tests.loyalty_support import (
    ALICE,
    BOB,
    STRANGER,
    apply,
    balance_and_ledger,
    customer_return,
    customer_sale,
    in_loyalty,
)


def test_a_customer_without_an_account_has_a_summary_of_zeros(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            assert await accounts.summary(conn, "demo", BOB) == {
                "points": 0, "tier": "Member", "multiplier_ppm": 1_000_000, "spend_12m_minor": 0,
                "next_tier": {"name": "Silver", "min_spend_minor": 50_000, "spend_to_go_minor": 50_000},
                "expiring": []}
    in_loyalty(database_url, work)


def test_a_sale_earns_and_the_summary_shows_it(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await apply(pool, customer_sale(ALICE, [("COF-250", 2, 450), ("MILK-1L", 1, 129)]))
        assert await balance_and_ledger(pool, ALICE) == (10, 10, 10)  # 10.29 spent: 10 points
        async with pool.acquire() as conn:
            summary = await accounts.summary(conn, "demo", str(ALICE))
        assert (summary["points"], summary["spend_12m_minor"], summary["tier"]) == (10, 1029, "Member")
    in_loyalty(database_url, work)


PROGRAM = {"point_value_minor": 1, "earn_points_per_unit": 1, "earn_unit_minor": 100, "earn_per_order_points": 5,
           "earn_bonuses": [{"sku": "COF-250", "points_per_unit": 3}],
           "tiers": [{"name": "Member", "min_spend_minor": 0, "multiplier_ppm": 1_000_000},
                     {"name": "Gold", "min_spend_minor": 2_000, "multiplier_ppm": 1_500_000}],
           "expiry_months": 12, "notice_days": 30, "offline_store_budget_points": 500,
           "offline_customer_cap_points": 100}


async def _program(pool: asyncpg.Pool, **changes: object) -> None:
    async with pool.acquire() as conn:
        await programs.save(conn, "demo", programs.from_json("EUR", {**PROGRAM, **changes}), "test")


async def _points(pool: asyncpg.Pool, customer: uuid.UUID = ALICE) -> int:
    return (await balance_and_ledger(pool, customer))[0]


def test_earning_follows_the_rules_and_the_tier_multiplier_of_the_customer_before_the_sale(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool)
        # 2 x 4.50 coffee + 1.29 milk = 10.29: 10 base + 5 per order, shared 9/6 by amount (900:129 -> 13.1 / 1.9,
        # largest remainder), + 3 x 2 coffee bonus: 19 + 2 = 21, at Member (1x)
        await apply(pool, customer_sale(ALICE, [("COF-250", 2, 450), ("MILK-1L", 1, 129)]))
        assert await balance_and_ledger(pool, ALICE) == (21, 21, 21)
        earned = await pool.fetch("SELECT line, points FROM loyalty_earnings ORDER BY line")
        assert [(row["line"], row["points"]) for row in earned] == [(1, 19), (2, 2)]
        # 10.29 + 10.00 = 20.29 >= 20.00: Gold after the second sale, which itself still earns at 1x
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 1000)]))
        assert await _points(pool) == 21 + 15
        async with pool.acquire() as conn:
            summary = await accounts.summary(conn, "demo", ALICE)
        assert (summary["tier"], summary["multiplier_ppm"], summary["next_tier"]) == ("Gold", 1_500_000, None)
        # at Gold: (10 + 5) x 1.5 = 22.5 -> 23 (half up)
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 1000)]))
        assert await balance_and_ledger(pool, ALICE) == (59, 59, 59)
    in_loyalty(database_url, work)


def test_a_partial_refund_reverses_exactly_what_the_returned_units_earned(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool, earn_per_order_points=0, earn_bonuses=[])
        # 12.00: 12 points shared 10.5 / 1.5 by amount, the tie's remainder to the earlier line: coffee 11, milk 1
        sale = customer_sale(ALICE, [("COF-250", 3, 350), ("MILK-1L", 1, 150)])
        await apply(pool, sale)
        assert await _points(pool) == 12
        await apply(pool, customer_return(sale, [(1, 1)]))  # 1 of 3 coffees: round_half_up(11 x 1 / 3) = 4
        assert await balance_and_ledger(pool, ALICE) == (8, 8, 8)
        await apply(pool, customer_return(sale, [(1, 1)]))  # the 2nd: round_half_up(22 / 3) - 4 = 3
        assert await _points(pool) == 5
        back = customer_return(sale, [(1, 5), (2, 1)])  # more than is left: the last coffee (4), the milk (1)
        await apply(pool, back)
        assert await balance_and_ledger(pool, ALICE) == (0, 0, 0)  # every return together: exactly the 12 earned
        reversed_ = await pool.fetch("SELECT points FROM loyalty_ledger WHERE kind = 'earn_reversed' ORDER BY at")
        assert [row["points"] for row in reversed_] == [-4, -3, -5]
        await apply(pool, customer_return(sale, [(1, 1)]))  # nothing left to reverse
        assert await _points(pool) == 0
    in_loyalty(database_url, work)


def test_a_refund_to_points_credits_them_back_once(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool, earn_per_order_points=0, earn_bonuses=[], earn_points_per_unit=0)
        sale = customer_sale(ALICE, [("MILK-1L", 2, 100)])
        refund = customer_return(sale, [(1, 1)], refund_points=60)
        await apply(pool, sale, refund)
        assert await balance_and_ledger(pool, ALICE) == (60, 60, 60)
        async with pool.acquire() as conn, conn.transaction():  # the same event again (a replay): once
            await apply_returns(conn, [refund])
        assert await _points(pool) == 60
    in_loyalty(database_url, work)


def test_expiry_takes_the_oldest_lot_first_after_a_notice(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool, earn_per_order_points=0, earn_bonuses=[], tiers=PROGRAM["tiers"][:1])  # type: ignore[index]
        now = datetime.now(UTC)
        old = now - timedelta(days=350)  # expires in about 15 days (12 months after)
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 10_000)], ts=int(old.timestamp() * 1000)))
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 1, 5_000)], ts=int((now - timedelta(days=30))
                                                                             .timestamp() * 1000)))
        async with pool.acquire() as conn:
            summary = await accounts.summary(conn, "demo", ALICE)
            assert summary["points"] == 150
            assert [lot["points"] for lot in summary["expiring"]] == [100]  # the old lot only, within 30 days
            await redemptions.redeem(conn, "demo", "store-001", Redemption("r1", ALICE, 30, "till-1", "bob"))
        lots = await pool.fetch("SELECT points, remaining FROM loyalty_lots ORDER BY earned_at")
        assert [(lot["points"], lot["remaining"]) for lot in lots] == [(100, 70), (50, 50)]  # the oldest first
        assert await expire_due(pool, now + timedelta(days=5)) == 0  # not due yet
        assert await expire_due(pool, now + timedelta(days=20)) == 1
        assert await expire_due(pool, now + timedelta(days=21)) == 0  # once
        assert await balance_and_ledger(pool, ALICE) == (50, 50, 50)
        expired = await pool.fetchval("SELECT points FROM loyalty_ledger WHERE kind = 'expire'")
        assert expired == -70
    in_loyalty(database_url, work)


def test_tiers_follow_the_rolling_twelve_months_of_spend(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await _program(pool)
        sale = customer_sale(ALICE, [("MILK-1L", 3, 1000)])
        await apply(pool, sale)
        async with pool.acquire() as conn:
            assert (await accounts.summary(conn, "demo", ALICE))["tier"] == "Gold"
        await apply(pool, customer_return(sale, [(1, 2)]))  # 10.00 left this year: back to Member
        async with pool.acquire() as conn:
            assert (await accounts.summary(conn, "demo", ALICE))["spend_12m_minor"] == 1000
        await apply(pool, customer_sale(ALICE, [("MILK-1L", 2, 1000)]))
        assert await retier_due(pool, datetime.now(UTC)) == 0  # checked just now
        later = datetime.now(UTC) + timedelta(days=370)  # the daily service, a year on: the sales left the window
        assert await retier_due(pool, later) == 1
        row = await pool.fetchrow("SELECT tier, spend_12m_minor FROM loyalty_accounts WHERE customer = $1", ALICE)
        assert (row["tier"], row["spend_12m_minor"]) == ("Member", 0)
    in_loyalty(database_url, work)


def test_a_sale_naming_another_tenants_customer_earns_nothing(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await apply(pool, customer_sale(STRANGER, [("MILK-1L", 1, 1000)]))
        assert await pool.fetchval("SELECT count(*) FROM loyalty_accounts") == 0
    in_loyalty(database_url, work)


def test_the_demo_seed_gives_customers_points_once_and_the_export_holds_the_account(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        assert await seed_demo_loyalty(pool, "demo") == 2
        assert await seed_demo_loyalty(pool, "demo") == 0  # a second demo start changes nothing
        assert await balance_and_ledger(pool, BOB) == (1540, 1540, 1540)  # the first customer (by id)
        assert await balance_and_ledger(pool, ALICE) == (820, 820, 820)
        async with pool.acquire() as conn:
            summary = await accounts.summary(conn, "demo", ALICE)
            assert [lot["points"] for lot in summary["expiring"]] == [800]  # the year-old lot, within the notice
            exported = await privacy.export(conn, "demo", str(ALICE))
            nothing = await privacy.export(conn, "demo", STRANGER)  # another tenant's customer: none of theirs
        assert exported["account"] == summary
        assert [entry["points"] for entry in exported["ledger"]] == [800, 20]
        assert [lot["remaining"] for lot in exported["lots"]] == [800, 20]
        assert nothing["ledger"] == [] and nothing["account"]["points"] == 0
        json.dumps(exported)  # one JSON document with the customer's other data
    in_loyalty(database_url, work)
