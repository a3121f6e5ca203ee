"""The loyalty ledger on real PostgreSQL, through the appliers as the ingest runs them: a sale earns by the program
x the tier's multiplier; a partial refund reverses exactly what the returned units earned (and all the returns of
a sale exactly what it earned); expiry takes the oldest lot first and the notice shows what expires soon; tiers
follow the rolling 12-month spend; an account's balance always equals its ledger's sum."""

from __future__ import annotations

import asyncpg

from hub.loyalty import accounts
from tests.loyalty_support import ALICE, BOB, apply, balance_and_ledger, customer_sale, in_loyalty


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
