"""Loyalty benchmark: points redemptions per second at the hub, on one hot account and spread over many accounts,
each beside its floor measured in the same run.

    python -m bench.loyalty [--redemptions 2000] [--accounts 500] [--concurrency 16]

Real parts: an embedded PostgreSQL migrated by the hub, and the hub's own redemption (hub.loyalty.redemptions.redeem,
what the points_redeem responder calls: the redemption row keyed by its id, the conditional UPDATE of the balance,
the ledger entry and the oldest lots consumed, in one transaction), run by `concurrency` workers at once as
concurrent store requests are. Figures:

- redemptions_hot_per_s: every redemption on ONE account (each waits for the row lock of the one before: the
  worst case of a family sharing a card at every till at once);
- redemptions_many_per_s: the same spread over `accounts` accounts;
- floor_hot_per_s / floor_many_per_s: the raw conditional UPDATE alone (UPDATE ... SET balance = balance - n WHERE
  balance >= n, its own transaction) on the same accounts with the same workers: what never overspending costs
  at the least; hot_to_floor_ratio / many_to_floor_ratio: how many times slower the whole redemption is.

At the end the ledger of every account must sum to its balance (checked; the run fails otherwise). Progress goes
to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bench.figures import progress, ratio
from hub.db import create_pool, migrate
from hub.loyalty import redemptions
from hub.loyalty.redemptions import Redemption
from novapos.demo.embedded_postgres import EmbeddedPostgres

TENANT, STORE = "demo", "store-001"
START_POINTS = 10**9


async def _seed(pool: asyncpg.Pool, accounts: int) -> list[uuid.UUID]:
    customers = [uuid.uuid4() for _ in range(2 * (accounts + 1))]
    await pool.execute("INSERT INTO tenants (tenant, name, currency) VALUES ($1, 'Bench', 'EUR')", TENANT)
    await pool.executemany("INSERT INTO customers (tenant, id, created_by) VALUES ($1, $2, 'bench')",
                           [(TENANT, customer) for customer in customers])
    await pool.executemany("INSERT INTO loyalty_accounts (tenant, customer, balance, tier) VALUES ($1, $2, $3, 'Member')",
                           [(TENANT, customer, START_POINTS) for customer in customers])
    await pool.executemany("INSERT INTO loyalty_ledger (tenant, id, customer, key, kind, points, balance, actor)"
                           " VALUES ($1, $2, $3, $4, 'adjust', $5, $5, 'bench')",
                           [(TENANT, uuid.uuid4(), customer, f"seed-{customer}", START_POINTS)
                            for customer in customers])
    await pool.executemany("INSERT INTO loyalty_lots (tenant, id, customer, points, remaining, earned_at) VALUES"
                           " ($1, $2, $3, $4, $4, now())",
                           [(TENANT, uuid.uuid4(), customer, START_POINTS) for customer in customers])
    return customers


async def _run(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """`count` calls of `one` by `concurrency` workers; per second."""
    numbers = iter(range(count))

    async def worker() -> None:
        for number in numbers:
            await one(number)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def main(count: int, accounts: int, concurrency: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-loyalty-") as folder:
        state = Path(folder)
        state.chmod(0o755)
        with EmbeddedPostgres(state / "pg") as postgres:
            pool = await create_pool(postgres.url(), max_size=concurrency + 2)
            try:
                await migrate(pool)
                customers = await _seed(pool, accounts)
                # the floor on accounts of its own (its UPDATEs bypass the ledger), as many and as hot
                hot, many = customers[0], customers[1:accounts + 1]
                hot_spare, many_spare = customers[accounts + 1], customers[accounts + 2:]

                def redeem(prefix: str, customer_of: Callable[[int], uuid.UUID]) -> Callable[[int], Awaitable[None]]:
                    async def one(number: int) -> None:
                        async with pool.acquire() as conn:
                            await redemptions.redeem(conn, TENANT, STORE, Redemption(
                                f"{prefix}-{number}", customer_of(number), 3, "till-1", "bench"))
                    return one

                def floor(customer_of: Callable[[int], uuid.UUID]) -> Callable[[int], Awaitable[None]]:
                    async def one(number: int) -> None:
                        taken = await pool.fetchval(redemptions.TAKE, TENANT, customer_of(number), 3)
                        assert taken is not None
                    return one

                progress(f"hot account: {count} redemptions by {concurrency} workers, then the raw UPDATE floor")
                hot_rate = await _run(count, concurrency, redeem("hot", lambda _: hot))
                hot_floor = await _run(count, concurrency, floor(lambda _: hot_spare))
                progress(f"{accounts} accounts: {count} redemptions by {concurrency} workers, then the floor")
                many_rate = await _run(count, concurrency, redeem("many", lambda n: many[n % accounts]))
                many_floor = await _run(count, concurrency, floor(lambda n: many_spare[n % accounts]))
                off = await pool.fetchval(
                    "SELECT count(*) FROM loyalty_accounts a WHERE a.customer = ANY($1::uuid[]) AND a.balance <>"
                    " (SELECT sum(points) FROM loyalty_ledger l WHERE l.tenant = a.tenant AND"
                    " l.customer = a.customer)", [hot, *many])
                taken = await pool.fetchval("SELECT count(*) FROM loyalty_redemptions")
            finally:
                await pool.close()
    assert off == 0 and taken == 2 * count, (off, taken)
    return {"redemptions_hot_per_s": round(hot_rate), "floor_hot_per_s": round(hot_floor),
            "hot_to_floor_ratio": ratio(hot_floor, hot_rate),
            "redemptions_many_per_s": round(many_rate), "floor_many_per_s": round(many_floor),
            "many_to_floor_ratio": ratio(many_floor, many_rate),
            "redemptions": count, "accounts": accounts, "concurrency": concurrency,
            "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redemptions", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(asyncio.run(main(arguments.redemptions, arguments.accounts, arguments.concurrency))))
