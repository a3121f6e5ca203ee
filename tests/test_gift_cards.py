"""Gift cards at the hub on a real PostgreSQL: numbers never stored, the ledger and its cached balance, exact under
concurrency, redemptions, reversals and refunds idempotent on their redemption ids, the appliers confirming them."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from hub.customers.privacy import domain_parts
from hub.giftcards import cards, numbers
from hub.giftcards.privacy import export
from hub.giftcards.sales import apply_returns, apply_sales
from hub.refusals import Refused
from novapos import validators
from novapos.pricing import line_tax
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.schemas import SCHEMAS
from tests.codes_support import sale
from tests.events import CUSTOMER
from tests.fleet import FLEET_WORLD
from tests.stock_world import on_database


async def _refused(work: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        await work
    return caught.value


def _redeem(pool: asyncpg.Pool, number: str, redemption: str, amount: int, currency: str = "EUR") -> Any:
    return cards.redeem(pool, "demo", "store-001", number=number, redemption=redemption, amount_minor=amount,
                        currency=currency, till="till-1", actor="alice")


async def _issue(pool: asyncpg.Pool, amount: int, **changes: Any) -> tuple[str, dict[str, Any]]:
    return await cards.issue(pool, "demo", **{"amount_minor": amount, "currency": "EUR", "expires_at": None,
                                              "customer": None, "actor": "ada", **changes})


async def _ledger_agrees(pool: asyncpg.Pool) -> None:
    """Every card's cached balance is its ledger's sum, and each entry's balance the running sum."""
    rows = await pool.fetch("SELECT c.id, c.balance_minor, coalesce(sum(l.amount_minor), 0) AS total FROM gift_cards c"
                            " LEFT JOIN gift_card_ledger l ON l.tenant = c.tenant AND l.card = c.id GROUP BY c.tenant, c.id")
    assert all(row["balance_minor"] == row["total"] for row in rows), rows
    running = await pool.fetch("SELECT balance_minor, sum(amount_minor) OVER (PARTITION BY card ORDER BY id) AS sum"
                               " FROM gift_card_ledger")
    assert all(row["balance_minor"] == row["sum"] for row in running)


def test_numbers() -> None:
    made = {numbers.generate() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(number) == 19 and numbers.normalise("card", number) == number for number in made)
    number = made.pop()
    assert numbers.normalise("card", numbers.grouped(number)) == number  # typed in groups
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    for bad in (wrong, "1234", "4242 4242 4242 424x", 4242424242424242, None, "0" * 20):
        with pytest.raises(validators.Invalid):
            numbers.normalise("card", bad)
    started = time.perf_counter()
    digest = numbers.number_hash("demo", number)
    assert time.perf_counter() - started < 0.5 and digest != numbers.number_hash("other", number)


async def test_fifty_concurrent_redemptions_never_overspend(database_url: str) -> None:
    """One card of 10.00, fifty tills taking 0.30 at once (a pool of 25 connections): 33 are paid, 17 refused as
    short, 0.10 left, and the ledger says the same."""
    async def work(pool: asyncpg.Pool) -> None:
        await pool.execute(FLEET_WORLD)
        number, _card = await _issue(pool, 1000)
        wide = await asyncpg.create_pool(database_url, min_size=25, max_size=25)
        try:
            results = await asyncio.gather(*(_redeem(wide, number, f"rush-{index}", 30) for index in range(50)),
                                           return_exceptions=True)
        finally:
            await wide.close()
        paid = [result for result in results if isinstance(result, dict)]
        short = [result for result in results if isinstance(result, Refused)]
        assert (len(paid), len(short)) == (33, 17), results
        assert all(exc.code == 402 and "holds only" in str(exc) for exc in short)
        assert sorted(answer["balance_minor"] for answer in paid) == list(range(10, 1000, 30))  # each balance once
        assert await pool.fetchval("SELECT balance_minor FROM gift_cards") == 10
        assert await pool.fetchval("SELECT count(*) FROM gift_card_ledger WHERE kind = 'redeem'") == 33
        await _ledger_agrees(pool)

        again, _card = await _issue(pool, 500)  # one redemption sent five times at once (a till's retries)
        answers = await asyncio.gather(*(_redeem(pool, again, "same", 500) for _ in range(5)))
        assert len({repr(answer) for answer in answers}) == 1 and answers[0]["balance_minor"] == 0
        assert await pool.fetchval("SELECT count(*) FROM gift_card_ledger WHERE redemption = 'same'") == 1
    await on_database(database_url, work)


def _moved(operation: str) -> float:
    """novapos_hub_gift_card_moved_minor_total of `operation` in euros (one series per currency: no sum of two)."""
    return REGISTRY.get_sample_value("novapos_hub_gift_card_moved_minor_total",
                                     {"operation": operation, "currency": "EUR"}) or 0.0


async def test_redeem_reverse_refund_are_idempotent(database_url: str) -> None:
    operations = ("issue", "redeem", "reverse", "refund", "top_up")
    before = {operation: _moved(operation) for operation in operations}

    async def work(pool: asyncpg.Pool) -> None:
        await pool.execute(FLEET_WORLD)
        await pool.execute("INSERT INTO customers (tenant, id, created_by) VALUES ('demo', $1, 'test')",
                           uuid.UUID(CUSTOMER))
        number, card = await _issue(pool, 5000, customer=uuid.UUID(CUSTOMER))
        assert card["card"] == f"**** {number[-4:]}" and card["balance_minor"] == 5000
        stored = await pool.fetchrow("SELECT * FROM gift_cards")
        assert number not in repr(dict(stored)) and number[-4:] == stored["last4"]
        assert number not in repr([dict(row) for row in await pool.fetch("SELECT * FROM audit_records")])

        first = await _redeem(pool, number, "g1", 1200)
        assert first == {"redemption": "g1", "card": f"**** {number[-4:]}", "amount_minor": 1200,
                         "balance_minor": 3800}
        assert await _redeem(pool, number, "g1", 1200) == first  # asked again: once
        assert (await _refused(_redeem(pool, number, "g1", 1300))).code == 409  # the id with another amount
        assert (await _refused(_redeem(pool, number, "g2", 9000))).code == 402
        assert (await _refused(_redeem(pool, number, "g2", 100, "USD"))).code == 409
        assert (await _refused(_redeem(pool, "4242424242424242", "g2", 100))).code == 404

        reverse = {"redemption": "g1", "actor": "alice", "reason": "void"}
        assert await cards.reverse(pool, "demo", "store-001", **reverse) == {"redemption": "g1", "reversed": True,
                                                                              "balance_minor": 5000}
        assert (await cards.reverse(pool, "demo", "store-001", **reverse))["balance_minor"] == 5000  # once
        assert (await _refused(cards.reverse(pool, "demo", "store-002", **reverse))).code == 404  # not its own
        unseen = await cards.reverse(pool, "demo", "store-001", **{**reverse, "redemption": "nope"})
        assert unseen == {"redemption": "nope", "reversed": True, "balance_minor": None}  # a tombstone: nothing taken
        assert "reversed before" in str(await _refused(_redeem(pool, number, "nope", 100)))  # the redeem came late
        assert "reversed" in str(await _refused(_redeem(pool, number, "g1", 1200)))

        await _redeem(pool, number, "g3", 500)
        sold_g3 = sale(gift_card=("g3", 500))
        async with pool.acquire() as conn, conn.transaction():
            await apply_sales(conn, [sold_g3, sale(gift_card=("g-unknown", 100))])
        refund = {"number": number, "redemption": "f1", "amount_minor": 250, "currency": "EUR", "till": "till-2",
                  "actor": "bob", "order": sold_g3.id}
        assert (await cards.refund(pool, "demo", "store-001", **refund))["balance_minor"] == 4750
        assert (await cards.refund(pool, "demo", "store-001", **refund))["balance_minor"] == 4750
        async with pool.acquire() as conn, conn.transaction():
            await apply_returns(conn, [_return("f1", 250)])
        confirmed = {row["redemption"]: row["sale_event"] is not None for row in await pool.fetch(
            "SELECT redemption, sale_event FROM gift_card_ledger WHERE kind IN ('redeem', 'refund')")}
        assert confirmed == {"g1": False, "g3": True, "f1": True}
        sold = await _refused(cards.reverse(pool, "demo", "store-001", **{**reverse, "redemption": "g3"}))
        assert sold.code == 409 and "completed sale" in str(sold)

        await cards.set_active(pool, "demo", uuid.UUID(card["id"]), active=False, reason="lost", actor="ada")
        assert "blocked" in str(await _refused(_redeem(pool, number, "g4", 1)))
        assert (await _refused(cards.top_up(pool, "demo", uuid.UUID(card["id"]), amount_minor=1, reason=None,
                                            actor="ada"))).code == 409
        await cards.set_active(pool, "demo", uuid.UUID(card["id"]), active=True, reason="found", actor="ada")
        assert (await cards.top_up(pool, "demo", uuid.UUID(card["id"]), amount_minor=450, reason="gift",
                                   actor="ada"))["balance_minor"] == 5200
        await pool.execute("UPDATE gift_cards SET expires_at = now() - interval '1 day'")
        assert "expired" in str(await _refused(_redeem(pool, number, "g5", 1)))
        assert (await cards.balance(pool, "demo", number))["active"] is False
        await _ledger_agrees(pool)
        assert [row["action"] for row in await pool.fetch("SELECT action FROM audit_records ORDER BY seq")] == [
            "gift_card.issued", "gift_card.blocked", "gift_card.unblocked", "gift_card.topped_up"]

        async with pool.acquire() as conn:
            exported = await export(conn, "demo", CUSTOMER)
            parts = await domain_parts(conn, "demo", uuid.UUID(CUSTOMER))  # what the customer's DSR export holds
        assert parts["giftcards"] == exported and parts["coupons"] == {"coupon_uses": []}
        assert [entry["kind"] for entry in exported["gift_cards"][0]["ledger"]] == [
            "issue", "redeem", "reverse", "redeem", "refund", "top_up"]
        assert number not in repr(exported)
    await on_database(database_url, work)
    assert {operation: _moved(operation) - before[operation] for operation in operations} == {
        "issue": 5000, "redeem": 1700, "reverse": 1200, "refund": 250, "top_up": 450}


def _return(redemption: str, amount: int) -> Envelope:
    """A valid return.completed v3 of one item, refunded `amount` to a gift card by the credit `redemption`."""
    money = {"minor": amount, "currency": "EUR"}
    body = {"till": "till-2", "session": "s-2", "cashier": "bob", "currency": "EUR", "approver": "manager",
            "returned": [{"sku": "COF-250", "name": "Ground coffee 250 g", "quantity": 1, "unit_price": money,
                          "amount": money, "tax": {"class": "food", "rate_ppm": 70_000, "included": True,
                                                   "amount": {"minor": line_tax(amount, 70_000, True),
                                                              "currency": "EUR"}},
                          "condition": "resaleable", "restock": True}],
            "restocking_fee": {"minor": 0, "currency": "EUR"}, "lines": [], "tenders": [],
            "refunds": [{"id": "rf-1", "method": "gift_card", "amount": money,
                         "gift_card": {"card": "**** 0000", "redemption": redemption}}],
            "change": {"minor": 0, "currency": "EUR"}, "total": {"minor": -amount, "currency": "EUR"}}
    SCHEMAS[("return.completed", 3)](body)
    return Envelope(id=uuid7(), type="return.completed", v=3, tenant="demo", store="store-001", seq=2,
                    ts=1_700_000_000_000, body=body)
