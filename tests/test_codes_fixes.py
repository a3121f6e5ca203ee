"""The codes review's findings, each reproduced on a real PostgreSQL: a reversal overtaking its redemption, one
redemption or coupon use named by two sales, refunds capped by the original order, holds kept while a sale may
still arrive, per-customer limits across a batch, codes of an ended promotion, top-ups of expired cards."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import asyncpg
import pytest
import trio

from hub.coupons import issuing, uses
from hub.coupons.sales import apply_sales as coupon_sales
from hub.domains import Domain
from hub.giftcards import cards, metrics, numbers
from hub.giftcards.sales import apply_sales as card_sales
from hub.refusals import Refused
from hub.responders import _subscribe, _unsubscribe
from novapos import validators
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.replies import ERROR_CODE_HEADER
from tests.codes_support import PROMOTION, code_only_promotion, coupon, sale
from tests.fleet import FLEET_WORLD
from tests.stock_world import on_database


async def _refused(work: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        await work
    return caught.value


async def _card(pool: asyncpg.Pool, amount: int) -> tuple[str, dict[str, Any]]:
    await pool.execute(FLEET_WORLD)
    return await cards.issue(pool, "demo", amount_minor=amount, currency="EUR", expires_at=None, customer=None,
                             actor="ada")


def _redeem(pool: asyncpg.Pool, number: str, redemption: str, amount: int, store: str = "store-001") -> Any:
    return cards.redeem(pool, "demo", store, number=number, redemption=redemption, amount_minor=amount,
                        currency="EUR", till="t", actor="a")


async def test_a_reversal_overtaking_its_redemption_takes_nothing(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        number, _ = await _card(pool, 1000)
        gone = await cards.reverse(pool, "demo", "store-001", redemption="r1", actor="till", reason="void")
        assert gone == {"redemption": "r1", "reversed": True, "balance_minor": None}
        assert await cards.reverse(pool, "demo", "store-001", redemption="r1", actor="till", reason="void") == gone
        late = await _refused(_redeem(pool, number, "r1", 700))
        assert late.code == 409 and "reversed" in str(late)
        assert await pool.fetchval("SELECT balance_minor FROM gift_cards") == 1000
        assert await pool.fetchval("SELECT count(*) FROM gift_card_ledger WHERE kind = 'redeem'") == 0
    await on_database(database_url, work)


async def test_a_redemption_named_by_two_sales_is_reused(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        number, _ = await _card(pool, 1000)
        await _redeem(pool, number, "r2", 300)
        first, second, third = (sale(gift_card=("r2", 300)), sale(gift_card=("r2", 300), store="store-002"),
                                sale(gift_card=("r2", 300)))
        async with pool.acquire() as conn, conn.transaction():
            await card_sales(conn, [first, second])
        row = await pool.fetchrow("SELECT sale_event, reused FROM gift_card_ledger WHERE kind = 'redeem'")
        assert row["sale_event"] == first.id and row["reused"] is True
        async with pool.acquire() as conn, conn.transaction():
            assert await cards.confirm(conn, "demo", "store-001", third.id, "redeem", "r2", 300) == "reused"
            await _redeem(pool, number, "r3", 100)
            assert await cards.confirm(conn, "demo", "store-002", third.id, "redeem", "r3", 100) == "mismatch"
    await on_database(database_url, work)


async def test_refunds_are_capped_by_the_orders_gift_card_tenders(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        number, card = await _card(pool, 1000)
        await _redeem(pool, number, "r4", 500)
        sold = sale(gift_card=("r4", 500))
        async with pool.acquire() as conn, conn.transaction():
            await card_sales(conn, [sold])

        def refund(redemption: str, amount: int, order: uuid.UUID = sold.id) -> Any:
            return cards.refund(pool, "demo", "store-001", number=number, redemption=redemption, amount_minor=amount,
                                currency="EUR", till="t", actor="a", order=order)
        assert (await refund("f1", 300))["balance_minor"] == 800
        over = await _refused(refund("f2", 201))
        assert over.code == 409 and "200" in str(over)
        assert (await refund("f2", 200))["balance_minor"] == 1000
        assert (await _refused(refund("f3", 1))).code == 409  # all of it given back
        assert (await _refused(refund("f4", 1, uuid.uuid4()))).code == 409  # an order no gift card paid
        await pool.execute("UPDATE gift_cards SET expires_at = now() - interval '1 day'")
        expired = await _refused(cards.top_up(pool, "demo", uuid.UUID(card["id"]), amount_minor=100, reason=None,
                                              actor="ada"))
        assert expired.code == 409 and "expired" in str(expired)
    await on_database(database_url, work)


async def _coupons(pool: asyncpg.Pool, count: int, per_customer: int | None = None) -> list[str]:
    await pool.execute(FLEET_WORLD)
    await code_only_promotion(pool)
    made = await issuing.create_batch(pool, "demo", promotion=uuid.UUID(PROMOTION), count=count, expires_at=None,
                                      per_customer=per_customer, actor="ada")
    return list(made["codes"])


def _reserve(pool: asyncpg.Pool, code: str, redemption: str, store: str = "store-001", till_ms: int | None = None,
             customer: uuid.UUID | None = None) -> Any:
    return uses.reserve(pool, "demo", store, code=code, redemption=redemption, customer=customer, till="t",
                        actor="x", till_ms=till_ms)


async def _delivered(pool: asyncpg.Pool, store: str, ts_ms: int) -> None:
    """As the ingest leaves store_stats once `store`'s event stamped `ts_ms` arrived."""
    await pool.execute("INSERT INTO store_stats (tenant, store, events, seqs, last_seq, last_received_at, last_ts_ms)"
                       " VALUES ('demo', $1, 1, 1, 1, now(), $2) ON CONFLICT (tenant, store) DO UPDATE SET"
                       " last_ts_ms = $2", store, ts_ms)


async def test_a_hold_is_kept_while_its_sale_may_still_arrive(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        [code] = await _coupons(pool, 1)
        held = await _reserve(pool, code, "a1", till_ms=1_000_000)
        assert held["held_until_ms"] == 1_000_000 + uses.HOLD_MS
        await pool.execute("UPDATE coupon_redemptions SET held_until = now() - interval '1 s'")
        assert await uses.release_expired(pool, 10) == 0  # store-001 delivered nothing since: its sale may come
        await _delivered(pool, "store-001", 1_000_000 + uses.HOLD_MS)  # not after the deadline on its clock
        assert await uses.release_expired(pool, 10) == 0
        assert (await _refused(_reserve(pool, code, "b1", "store-002"))).code == 409  # still held
        renewed = await _reserve(pool, code, "a1", till_ms=2_000_000)  # the till renews before completing
        assert renewed["held_until_ms"] == 2_000_000 + uses.HOLD_MS
        await pool.execute("UPDATE coupon_redemptions SET held_until = now() - interval '1 s'")
        await _delivered(pool, "store-001", 2_000_001 + uses.HOLD_MS)  # an event after it: no sale used it
        assert await uses.release_expired(pool, 10) == 1
        assert (await _reserve(pool, code, "a1", till_ms=3_000_000))["redemption"] == "a1"  # swept: taken again
        assert await pool.fetchval("SELECT uses FROM coupon_codes") == 1
        assert (await _refused(_reserve(pool, code, "b1", "store-002"))).code == 409
    await on_database(database_url, work)


async def test_a_coupon_use_named_by_two_sales_is_reused(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        [code] = await _coupons(pool, 1)
        await _reserve(pool, code, "a1")
        async with pool.acquire() as conn, conn.transaction():
            await coupon_sales(conn, [sale([coupon(code, "a1")]), sale([coupon(code, "a1")], store="store-002")])
        row = await pool.fetchrow("SELECT state, reused FROM coupon_redemptions")
        assert row["state"] == "used" and row["reused"] is True
        assert await pool.fetchval("SELECT uses FROM coupon_codes") == 1
    await on_database(database_url, work)


async def test_limits_customers_and_ended_promotions(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        made = await _coupons(pool, 3, per_customer=1)
        who = uuid.uuid4()
        assert (await _refused(_reserve(pool, made[0], "c0", customer=who))).code == 404  # not the tenant's
        await pool.execute("INSERT INTO customers (tenant, id, created_by) VALUES ('demo', $1, 'test')", who)
        await _reserve(pool, made[0], "c0", customer=who)
        limit = await _refused(_reserve(pool, made[1], "c1", customer=who))  # another code of the batch
        assert limit.code == 409 and "as often" in str(limit)
        await pool.execute("UPDATE promotions SET state = 'ended'")
        ended = await _refused(_reserve(pool, made[2], "c2", customer=uuid.UUID(str(who))))
        assert ended.code == 409 and "ended" in str(ended)
        assert await pool.fetchval("SELECT sum(uses) FROM coupon_codes") == 1  # the refusals took nothing
    await on_database(database_url, work)


def test_numbers_are_found_by_a_keyed_hash_and_refused_without_a_key() -> None:
    number = "6280000000000000010"
    digest = numbers.number_hash("demo", number)
    numbers.use_key(b"\x01" * 32)
    assert numbers.number_hash("demo", number) != digest  # another hub's key finds nothing here
    numbers.use_key(None)
    with pytest.raises(Refused) as refused:
        numbers.number_hash("demo", number)
    assert refused.value.code == 503 and "[gift_cards] key_file" in str(refused.value)


async def test_one_slow_request_holds_no_other_behind_it(nats_server: EmbeddedNats) -> None:
    """nats-py calls one subscription's callback one message at a time: the hub answers each in its own task."""
    async def answer(_pool: Any, subject: str, data: bytes) -> bytes:
        await asyncio.sleep(1.0 if data == b"slow" else 0.0)
        return data

    async def work() -> list[bytes]:
        link = nats_server.hub_link("hub-test")
        await link.connect()
        try:
            subscriptions = await _subscribe(link, None, [Domain("slowness", responders={"novapos.t.s.req.x": answer})])
            done: list[bytes] = []

            async def ask(data: bytes) -> None:
                done.append((await link.client.request("novapos.t.s.req.x", data, timeout=5)).data)
            slow = asyncio.create_task(ask(b"slow"))
            await asyncio.sleep(0.1)
            await asyncio.wait_for(ask(b"fast"), 0.5)  # answered while the slow one is still being worked on
            await slow
            await _unsubscribe(subscriptions)
            return done
        finally:
            await link.client.close()
    assert await trio.to_thread.run_sync(asyncio.run, work()) == [b"fast", b"slow"]


async def test_entries_no_sale_confirmed_within_a_day_are_listed(database_url: str) -> None:
    async def work(pool: asyncpg.Pool) -> None:
        number, _ = await _card(pool, 1000)
        for redemption in ("left", "voided", "sold"):
            await _redeem(pool, number, redemption, 100)
        await cards.reverse(pool, "demo", "store-001", redemption="voided", actor="a", reason=None)
        async with pool.acquire() as conn, conn.transaction():
            await card_sales(conn, [sale(gift_card=("sold", 100))])
        assert (await cards.unconfirmed(pool, "demo"))["total"] == 0  # within the day: a sale may still come
        await pool.execute("UPDATE gift_card_ledger SET at = at - interval '25 hours'")
        listed = await cards.unconfirmed(pool, "demo")
        assert listed["total"] == 1 and [item["redemption"] for item in listed["items"]] == ["left"]
        assert listed["items"][0]["card"] == f"**** {number[-4:]}"
        assert metrics.UNCONFIRMED.labels("demo")._value.get() == 1
    await on_database(database_url, work)


async def test_a_refused_request_is_logged_without_the_values_it_carried(nats_server: EmbeddedNats,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    async def refuse(_pool: Any, subject: str, data: bytes) -> bytes:
        raise validators.Invalid("name", f"must be shorter, not {validators.describe(data.decode())}")

    async def fail(_pool: Any, subject: str, data: bytes) -> bytes:
        raise RuntimeError(f"broke on {data.decode()}")

    async def work() -> list[str]:
        link = nats_server.hub_link("hub-test")
        await link.connect()
        try:
            subscriptions = await _subscribe(link, None, [Domain("privacy", responders={
                "novapos.t.s.req.find": refuse, "novapos.t.s.req.make": fail})])
            errors = []
            for subject in ("novapos.t.s.req.find", "novapos.t.s.req.make"):
                reply = await link.client.request(subject, b"Anna Schmidt", timeout=5)
                errors.append(reply.headers[ERROR_CODE_HEADER])
            await _unsubscribe(subscriptions)
            return errors
        finally:
            await link.client.close()
    with caplog.at_level(logging.INFO, logger="hub.responders"):
        assert await trio.to_thread.run_sync(asyncio.run, work()) == ["400", "500"]
    logged = " ".join(record.getMessage() for record in caplog.records if record.name == "hub.responders")
    assert "novapos.t.s.req.find" in logged and "its name is not valid" in logged and "RuntimeError" in logged
    assert "Anna" not in logged
