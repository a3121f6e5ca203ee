"""The payments appliers of hub.payments.sales on real PostgreSQL, each in one transaction as the ingest runs them:
a sale applied before its card's approval (one batch applies sales first) is linked when the approval comes; the
approval applied twice (the fast path, then the event) is one intent; a split whose card amount differs from its
intent is marked for attention, not refused; a card refund made at a terminal is recorded once on the intent; a
declined card is a failed intent."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from hub.payments import intents
from hub.payments.sales import apply_card_approved, apply_card_declined, apply_returns, apply_sales, capture_round
from hub.payments.service import Payments
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from tests.events import sale_v3_body
from tests.payment_support import in_payments

CARD_TENDER = "0190a3c4-7e1f-7b2a-9c3d-000000000001"  # sale_v3_body's card tender: 5.00


def _event(event_type: str, body: dict[str, Any], seq: int = 1, store: str = "store-001") -> Envelope:
    return Envelope(id=uuid7(), type=event_type, v=1 if event_type != "sale.completed" else 3, tenant="demo",
                    store=store, seq=seq, ts=1_760_000_000_000, body=body)


def _approval(tender: str = CARD_TENDER, amount: int = 500) -> dict[str, Any]:
    return {"till": "till-1", "tender": tender, "currency": "EUR", "amount": {"minor": amount, "currency": "EUR"},
            "card": {"reference": uuid.UUID(tender).hex, "scheme": "VISA", "masked": "************4242",
                     "auth_code": "100001", "terminal": "terminal-1"}, "offline": False}


async def _apply(payments: Payments, applier: Any, *events: Envelope) -> None:
    async with payments.pool.acquire() as conn, conn.transaction():
        await applier(conn, list(events))


async def _intent(payments: Payments, tender: str = CARD_TENDER) -> intents.Intent:
    async with payments.pool.acquire() as conn:
        found = await intents.by_tender(conn, "demo", tender)
    assert found is not None
    return found


async def _rows(payments: Payments, sql: str, *args: Any) -> Sequence[asyncpg.Record]:
    async with payments.pool.acquire() as conn:
        return list(await conn.fetch(sql, *args))


def test_a_sale_before_its_approval_is_linked_when_the_approval_comes_and_twice_is_once(database_url: str) -> None:
    async def work(payments: Payments) -> None:
        sale = _event("sale.completed", sale_v3_body())
        await _apply(payments, apply_sales, sale)  # the sale first: its card's claim waits
        await _apply(payments, apply_card_approved, _event("card.approved", _approval()))
        await _apply(payments, apply_card_approved, _event("card.approved", _approval(), seq=2))  # the fast path's
        linked = await _intent(payments)
        assert (linked.state, linked.order_id, linked.amount_minor, linked.attention) == ("authorized", sale.id, 500,
                                                                                         None)
        assert len(await _rows(payments, "SELECT 1 FROM payment_intents")) == 1
        claims = await _rows(payments, "SELECT order_id, linked_at FROM payment_tender_sales")
        assert [row["order_id"] for row in claims] == [sale.id] and claims[0]["linked_at"] is not None
    in_payments(database_url, "", work)


def test_a_card_amount_that_differs_from_its_intent_is_marked_for_attention(database_url: str) -> None:
    async def work(payments: Payments) -> None:
        await _apply(payments, apply_card_approved, _event("card.approved", _approval(amount=450)))
        sale = _event("sale.completed", sale_v3_body())  # the sale says the card paid 5.00
        await _apply(payments, apply_sales, sale)
        marked = await _intent(payments)
        assert marked.order_id == sale.id and marked.state == "authorized"  # linked all the same: the store sold
        assert marked.attention == "the sale's tender is 500 EUR but its payment is 450 EUR"
    in_payments(database_url, "", work)


def test_tenders_that_do_not_add_up_to_the_total_are_marked_for_attention(database_url: str) -> None:
    async def work(payments: Payments) -> None:
        await _apply(payments, apply_card_approved, _event("card.approved", _approval()))
        body = copy.deepcopy(sale_v3_body())
        body["total"]["minor"] = 900  # tenders 9.00 - change 0.61 = 8.39, not 9.00 (a store's bug, applied anyway)
        await _apply(payments, apply_sales, _event("sale.completed", body))
        assert (await _intent(payments)).attention == "the sale's tenders add up to 839, not its total 900"
    in_payments(database_url, "", work)


def test_a_terminal_refund_is_recorded_once_on_the_original_intent(database_url: str) -> None:
    async def work(payments: Payments) -> None:
        await _apply(payments, apply_card_approved, _event("card.approved", _approval()))
        async with payments.pool.acquire() as conn, conn.transaction():  # as if the capture service had captured it
            intent = await intents.by_tender(conn, "demo", CARD_TENDER, lock=True)
            assert intent is not None
            await intents.change(conn, intent, intents.State.CAPTURED, captured_minor=500)
        refund_id = str(uuid7())
        body = {"till": "till-1", "cashier": "alice", "reason": "too small", "refunds": [
            {"id": refund_id, "method": "card", "amount": {"minor": 200, "currency": "EUR"},
             "card": {"reference": "r1", "original_reference": uuid.UUID(CARD_TENDER).hex, "scheme": "VISA",
                      "masked": "************4242"}},
            {"id": str(uuid7()), "method": "cash", "amount": {"minor": 99, "currency": "EUR"}}]}
        await _apply(payments, apply_returns, _event("return.completed", body))
        await _apply(payments, apply_returns, _event("return.completed", body, seq=2))  # the same refund again
        refunded = await _intent(payments)
        assert (refunded.state, refunded.refunded_minor) == ("captured", 200)
        refunds = await _rows(payments, "SELECT refund_key, via, amount_minor, actor FROM payment_refunds")
        assert [tuple(row) for row in refunds] == [(refund_id, "terminal", 200, "till-user:alice")]
        events = await _rows(payments, "SELECT type FROM payment_outbox ORDER BY position")
        assert [row["type"] for row in events] == ["payment.authorized", "payment.captured", "payment.refund"]
    in_payments(database_url, "", work)


def test_a_refund_the_provider_declined_does_not_block_the_terminals_under_its_key(database_url: str) -> None:
    async def work(payments: Payments) -> None:
        await _apply(payments, apply_card_approved, _event("card.approved", _approval()))
        async with payments.pool.acquire() as conn, conn.transaction():
            intent = await intents.by_tender(conn, "demo", CARD_TENDER, lock=True)
            assert intent is not None
            await intents.change(conn, intent, intents.State.CAPTURED, captured_minor=500)
            refund_id = str(uuid7())  # pay_refund under the till's key, declined by the provider
            await conn.execute("INSERT INTO payment_refunds (id, intent_id, tenant, refund_key, amount_minor, state,"
                               " via, actor) VALUES ($1, $2, 'demo', $3, 200, 'failed', 'provider', 'alice')",
                               uuid7(), intent.id, refund_id)
        body = {"till": "till-1", "cashier": "alice", "reason": "too small", "refunds": [
            {"id": refund_id, "method": "card", "amount": {"minor": 200, "currency": "EUR"},
             "card": {"reference": "r1", "original_reference": uuid.UUID(CARD_TENDER).hex, "scheme": "VISA",
                      "masked": "************4242"}}]}
        await _apply(payments, apply_returns, _event("return.completed", body))
        assert (await _intent(payments)).refunded_minor == 200
        refunds = await _rows(payments, "SELECT refund_key, state, via FROM payment_refunds ORDER BY created_at")
        assert [(row["refund_key"].split(":")[:2], row["state"], row["via"]) for row in refunds] == [
            ([refund_id, "declined"], "failed", "provider"), ([refund_id], "succeeded", "terminal")]
    in_payments(database_url, "", work)


@pytest.mark.parametrize("sale_first", [False, True])
def test_a_sale_of_another_store_never_links_or_captures_a_stores_card(database_url: str, sale_first: bool) -> None:
    async def work(payments: Payments) -> None:
        approval = _event("card.approved", _approval(), store="store-002")
        sale = _event("sale.completed", sale_v3_body())  # store-001's sale names store-002's tender
        for applier, event in ([(apply_sales, sale), (apply_card_approved, approval)] if sale_first else
                               [(apply_card_approved, approval), (apply_sales, sale)]):
            await _apply(payments, applier, event)
        intent = await _intent(payments)
        assert (intent.store, intent.order_id) == ("store-002", None)
        assert await capture_round(payments) == 0
        assert intent.attention and "a sale of store-001" in intent.attention
    in_payments(database_url, "", work)


def test_a_declined_card_is_a_failed_intent(database_url: str) -> None:
    async def work(payments: Payments) -> None:
        tender = str(uuid.uuid4())
        declined = {"till": "till-1", "tender": tender, "currency": "EUR", "amount": {"minor": 400, "currency": "EUR"},
                    "card": {"reference": uuid.UUID(tender).hex, "terminal": "terminal-1"},
                    "message": "declined: DECLINED BY ISSUER"}
        await _apply(payments, apply_card_declined, _event("card.declined", declined))
        failed = await _intent(payments, tender)
        assert (failed.state, failed.amount_minor, failed.last_error) == ("failed", 400, "declined: DECLINED BY ISSUER")
    in_payments(database_url, "", work)
