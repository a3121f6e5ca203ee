"""Coupon codes at the hub on a real PostgreSQL: reservations (limits, per customer, expiry, withdrawal,
idempotency on the redemption id), releases, the sweeper, and the sale.completed v5 applier confirming uses."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest

from actors.till.coupons import checked_code
from actors.till.promoting import Pricing, public_coupon
from hub.coupons import codes, issuing, uses
from hub.coupons.privacy import export
from hub.coupons.sales import apply_sales
from hub.refusals import Refused
from novapos import coupon_codes, validators
from novapos import promotions as engine
from tests.codes_support import PROMOTION, code_only_promotion, coupon, sale
from tests.events import CUSTOMER
from tests.fleet import FLEET_WORLD
from tests.stock_world import on_database

ANN, BOB, CAROL, DAN, EVE = uuid.UUID(CUSTOMER), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


async def _refused(work: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        await work
    return caught.value


def _reserve(pool: asyncpg.Pool, code: str, redemption: str, customer: uuid.UUID | None = None,
             store: str = "store-001") -> Any:
    return uses.reserve(pool, "demo", store, code=code, redemption=redemption, customer=customer, till="till-1",
                        actor="alice")


async def _code(pool: asyncpg.Pool, code: str) -> asyncpg.Record:
    return await pool.fetchrow("SELECT * FROM coupon_codes WHERE tenant = 'demo' AND code = $1", code)


def test_codes_are_unguessable_and_readable() -> None:
    made = {codes.generate() for _ in range(2000)}
    assert len(made) == 2000
    for code in made:
        assert coupon_codes.CODE.fullmatch(code) and len(code) == 14
        assert not set(code.replace("-", "")) & set("01OI")
    assert coupon_codes.normalise("code", " welcome 10 ") == "WELCOME10"
    for bad in ("", "a", "WEL/COME", "-ABC", "X" * 40, 12, None):
        with pytest.raises(validators.Invalid):
            coupon_codes.normalise("code", bad)


def test_the_till_reads_a_code_as_the_hub_does() -> None:
    """One normalisation (novapos.coupon_codes) on both sides: what the till sends is what the hub stores, a code the
    hub would refuse is refused at the till before the hub is asked, and a public code typed loosely matches offline."""
    for typed in (" welcome 10 ", "spring-24", "ab c", "a", "WEL/COME", "-ABC", "X" * 40, "É10", 12, None):
        try:
            hub_reads: str | None = coupon_codes.normalise("code", typed)
        except validators.Invalid:
            hub_reads = None
        try:
            till_reads: str | None = checked_code(typed)
        except validators.Invalid:
            till_reads = None
        assert till_reads == hub_reads, typed
    promotion = engine.from_wire({"id": "p-hello", "version": 1, "currency": "EUR", "timezone": "Europe/Paris",
                                  "name": "Hello", "kind": "percent", "applies_to": "order", "value": 1000,
                                  "code_only": True, "public_codes": ["Hello 24"]})
    pricing = Pricing(1, engine.Rules((promotion,)), "s1", "north", 0)
    assert public_coupon(pricing, checked_code("hello24")) == promotion


async def test_a_single_use_batch_and_a_multi_use_code(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await pool.execute(FLEET_WORLD)
        await code_only_promotion(pool)
        batch = await issuing.create_batch(pool, "demo", promotion=uuid.UUID(PROMOTION), count=3, expires_at=None,
                                           per_customer=None, actor="ada")
        first, second, _third = batch["codes"]
        held = await _reserve(pool, first, "r1")
        assert held == {"redemption": "r1", "promotion": PROMOTION, "code": first}
        assert await _reserve(pool, first, "r1") == held  # the same request again: the same reservation
        used_up = await _refused(_reserve(pool, first, "r2", store="store-002"))
        assert used_up.code == 409 and "used already" in str(used_up)
        other = await _refused(_reserve(pool, second, "r1"))  # r1 holds another code
        assert other.code == 409 and "another coupon" in str(other)
        assert (await _refused(_reserve(pool, "NOPE-NOPE-NOPE", "r3"))).code == 404

        assert await uses.release(pool, "demo", "store-002", "r1") == {"released": True}  # not store-002's: nothing
        assert (await _code(pool, first))["uses"] == 1
        assert await uses.release(pool, "demo", "store-001", "r1") == {"released": True}
        assert await uses.release(pool, "demo", "store-001", "r1") == {"released": True}  # idempotent
        assert (await _code(pool, first))["uses"] == 0
        again = await _refused(_reserve(pool, first, "r1"))
        assert again.code == 409 and "released" in str(again)
        assert (await _reserve(pool, first, "r4", store="store-002"))["code"] == first

        multi = await issuing.create_code(pool, "demo", promotion=uuid.UUID(PROMOTION), code="SUMMER10", max_uses=3,
                                          per_customer=1, expires_at=None, actor="ada")
        assert (multi["max_uses"], multi["per_customer"], multi["batch"]) == (3, 1, None)
        taken = await _refused(issuing.create_code(pool, "demo", promotion=uuid.UUID(PROMOTION), code="SUMMER10",
                                                   max_uses=1, per_customer=None, expires_at=None, actor="ada"))
        assert taken.code == 409
        await pool.executemany("INSERT INTO customers (tenant, id, created_by) VALUES ('demo', $1, 'test')",
                               [(ANN,), (BOB,), (CAROL,), (DAN,), (EVE,)])  # a customer named must be the tenant's
        anonymous = await _refused(_reserve(pool, "SUMMER10", "s0"))
        assert anonymous.code == 409 and "attach the customer" in str(anonymous)
        await _reserve(pool, "SUMMER10", "s1", ANN)
        limit = await _refused(_reserve(pool, "SUMMER10", "s2", ANN))
        assert limit.code == 409 and "as often as it allows (1)" in str(limit)
        await _reserve(pool, "SUMMER10", "s3", BOB)
        await _reserve(pool, "SUMMER10", "s4", CAROL)
        assert (await _refused(_reserve(pool, "SUMMER10", "s5", DAN))).code == 409  # 3 uses taken
        await uses.release(pool, "demo", "store-001", "s3")
        await _reserve(pool, "SUMMER10", "s5", DAN)  # a released use is free again

        await issuing.set_active(pool, "demo", "SUMMER10", active=False, reason="leaked online", actor="ada")
        await uses.release(pool, "demo", "store-001", "s5")
        withdrawn = await _refused(_reserve(pool, "SUMMER10", "s6", EVE))
        assert withdrawn.code == 409 and "withdrawn" in str(withdrawn)
        audited = await pool.fetch("SELECT action, target, details::text FROM audit_records ORDER BY seq")
        assert [row["action"] for row in audited] == ["coupon.batch_created", "coupon.created", "coupon.blocked"]
        assert not any(code in audited[0]["details"] for code in batch["codes"])  # a batch's codes stay out

        await pool.execute("UPDATE coupon_codes SET expires_at = now() - interval '1 day' WHERE code = $1", second)
        expired = await _refused(_reserve(pool, second, "e1"))
        assert expired.code == 409 and "expired" in str(expired)
        assert (await _code(pool, second))["uses"] == 0
    await on_database(database_url, work)


async def test_holds_end_and_sales_confirm_uses(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await pool.execute(FLEET_WORLD)
        await code_only_promotion(pool)
        made = (await issuing.create_batch(pool, "demo", promotion=uuid.UUID(PROMOTION), count=4, expires_at=None,
                                           per_customer=None, actor="ada"))["codes"]
        for index, code in enumerate(made):
            await _reserve(pool, code, f"h{index}")
        await pool.execute("UPDATE coupon_redemptions SET held_until = now() - interval '1 s' WHERE redemption"
                           " IN ('h1', 'h2')")
        assert await uses.release_expired(pool, 100) == 0  # the stores sent nothing since: a sale may still come
        await pool.execute("INSERT INTO store_stats (tenant, store, events, seqs, last_seq, last_received_at,"
                           " last_ts_ms) VALUES ('demo', 'store-001', 1, 1, 1, now(), $1)",
                           int(time.time() * 1000) + uses.HOLD_MS + 60_000)  # an event after the holds' deadline
        assert await uses.release_expired(pool, 100) == 2
        assert await uses.release_expired(pool, 100) == 0
        assert [row["uses"] for row in await pool.fetch("SELECT uses FROM coupon_codes ORDER BY code")] \
            == [0 if code in made[1:3] else 1 for code in sorted(made)]

        async with pool.acquire() as conn, conn.transaction():
            await apply_sales(conn, [
                sale([coupon(made[0], "h0")]),  # held: confirmed
                sale([coupon(made[1], "h1")]),  # its hold ended: used all the same, counted again
                sale([coupon(made[3], "h-unknown")]),  # the hub never held it: recorded, counted
                sale([coupon("SPRING", "o1", offline=True), coupon("SPRING", "o2", offline=True)], store="store-002"),
                sale(customer=None)])  # no coupon: nothing
        states = {row["redemption"]: (row["state"], row["offline"], row["sale_event"] is not None)
                  for row in await pool.fetch("SELECT * FROM coupon_redemptions")}
        assert states == {"h0": ("used", False, True), "h1": ("used", False, True), "h2": ("released", False, False),
                          "h3": ("held", False, False), "h-unknown": ("used", False, True),
                          "o1": ("used", True, True), "o2": ("used", True, True)}
        assert {row["code"]: row["uses"] for row in await pool.fetch("SELECT code, uses FROM coupon_codes")} \
            == {made[0]: 1, made[1]: 1, made[2]: 0, made[3]: 2}  # h3 held + h-unknown: past its limit, counted
        async with pool.acquire() as conn, conn.transaction():  # the same offline uses again (another event): once
            await apply_sales(conn, [sale([coupon("SPRING", "o1", offline=True)], store="store-002")])
        assert await pool.fetchval("SELECT count(*) FROM coupon_redemptions WHERE code = 'SPRING'") == 2
        used = await _refused(uses.release(pool, "demo", "store-001", "h0"))
        assert used.code == 409 and "completed sale" in str(used)

        async with pool.acquire() as conn:
            mine = await export(conn, "demo", CUSTOMER)
            assert sorted(use["code"] for use in mine["coupon_uses"]) == sorted([made[0], made[1], made[3],
                                                                                  "SPRING", "SPRING"])
            assert await export(conn, "demo", uuid.uuid4()) == {"coupon_uses": []}
    await on_database(database_url, work)


async def test_many_reservations_of_one_code_at_once_take_exactly_its_limit(database_url: str) -> None:
    """40 tills reserving a 25-use code at the same moment, on a pool of 20 connections: 25 win, never 26."""
    async def work(pool: asyncpg.Pool) -> None:
        await pool.execute(FLEET_WORLD)
        await code_only_promotion(pool)
        await issuing.create_code(pool, "demo", promotion=uuid.UUID(PROMOTION), code="RUSH25", max_uses=25,
                                  per_customer=None, expires_at=None, actor="ada")
        wide = await asyncpg.create_pool(database_url, min_size=20, max_size=20)
        try:
            results = await asyncio.gather(*(_reserve(wide, "RUSH25", f"rush-{index}") for index in range(40)),
                                           return_exceptions=True)
        finally:
            await wide.close()
        won = [result for result in results if isinstance(result, dict)]
        lost = [result for result in results if isinstance(result, Refused)]
        assert (len(won), len(lost)) == (25, 15) and all(exc.code == 409 for exc in lost)
        assert (await _code(pool, "RUSH25"))["uses"] == 25
        assert await pool.fetchval("SELECT count(*) FROM coupon_redemptions WHERE state = 'held'") == 25

        [single] = (await issuing.create_batch(pool, "demo", promotion=uuid.UUID(PROMOTION), count=1,
                                               expires_at=None, per_customer=None, actor="ada"))["codes"]
        answers = await asyncio.gather(*(_reserve(pool, single, "retried") for _ in range(5)))  # one request, 5 times
        assert answers == [{"redemption": "retried", "promotion": PROMOTION, "code": single}] * 5
        assert (await _code(pool, single))["uses"] == 1
    await on_database(database_url, work)


async def test_codes_only_for_code_only_promotions_and_public_codes_online(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        await pool.execute(FLEET_WORLD)
        plain = await code_only_promotion(pool, code_only=False, promotion=str(uuid.uuid4()))
        live = await code_only_promotion(pool, public_codes=("Spring 24",), state="live", promotion=str(uuid.uuid4()))
        ended = await code_only_promotion(pool, state="ended", promotion=str(uuid.uuid4()))
        for promotion, code, words in ((plain, 409, "without a code"), (ended, 409, "has ended"),
                                       (uuid.uuid4(), 404, "no promotion")):
            refused = await _refused(issuing.create_batch(pool, "demo", promotion=promotion, count=2, expires_at=None,
                                                          per_customer=None, actor="ada"))
            assert refused.code == code and words in str(refused)
        assert await pool.fetchval("SELECT count(*) FROM coupon_codes") == 0
        held = await _reserve(pool, coupon_codes.normalise("code", "spring 24"), "p1")
        assert held == {"redemption": "p1", "promotion": str(live), "code": "SPRING24"}
        await _reserve(pool, "SPRING24", "p2", store="store-002")  # a public code has no limit
        await pool.execute("UPDATE promotions SET state = 'ended' WHERE id = $1", live)
        assert (await _refused(_reserve(pool, "SPRING24", "p3"))).code == 404  # ended: no longer a code
    await on_database(database_url, work)
