"""The hub's payment intent service against the acquirer simulator over HTTP and a real PostgreSQL: every action
from every state (allowed ones reach their end, refused ones change nothing), idempotency of tenders and
refunds, a lost answer resolved by asking the provider (one charge), a provider that cannot be reached, the
watchdog's attention, auto-void, webhooks' news, and the outbox events and audit records each change writes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from hub.payments import intents
from hub.payments.acquirer import HttpGateway
from hub.payments.gateway import Outcome
from hub.payments.idempotency import fingerprint, once, purge
from hub.payments.intents import Intent
from hub.payments.model import ENDS, STARTS, Action, Refused, State
from hub.payments.sales import capture_round
from hub.payments.service import AUTO_VOID, Conflict, NoProvider, NotFound, Payments
from hub.payments.watchdog import refresh_gauges, resolve_stale
from tests.acquirer_support import RunningAcquirer, running_acquirer
from tests.payment_support import in_payments, rows

T, S = "demo", "store-001"
LOST = 1091
"""An amount whose answer the simulator never sends (it makes the call)."""


@pytest.fixture
def acquirer() -> Iterator[RunningAcquirer]:
    with running_acquirer(lost_answer_s=3) as running:
        yield running


async def approved(payments: Payments, acquirer: RunningAcquirer, tender: str, amount: int = 1000, **fields: Any) \
        -> Intent:
    """A card the (mock) terminal approved and reported to the provider, recorded at the hub."""
    reference = f"pay_{tender}"
    acquirer.report_terminal_approval(reference, amount)
    return await payments.record_terminal_approval(
        T, S, tender_id=tender, till="till-1", amount_minor=amount, authorized_minor=amount, currency="EUR",
        provider_ref=reference, auth_code="123456", scheme="visa", masked="**** 4242", offline=False, card_token=None,
        actor="till:till-1", **fields)


async def in_state(payments: Payments, acquirer: RunningAcquirer, state: State, tender: str) -> Intent:
    """An intent brought to `state` the way it gets there in life."""
    if state == State.AUTHORIZED:
        return await approved(payments, acquirer, tender)
    if state in (State.CAPTURED, State.REFUNDED):
        intent = await payments.capture(T, (await approved(payments, acquirer, tender)).id, actor="alice")
        if state == State.REFUNDED:
            intent, _ = await payments.refund(T, intent.id, amount_minor=1000, refund_key=f"r-{tender}", actor="alice",
                                              reason="returned")
        return intent
    intent = await payments.create(T, S, tender_id=tender, method="card",
                                   amount_minor=LOST if state == State.PROCESSING else 1000, currency="EUR",
                                   actor="alice")
    if state == State.CANCELLED:
        return await payments.cancel(T, intent.id, actor="alice", reason="abandoned")
    if state == State.FAILED:
        return await payments.authorize(T, intent.id, card="tok_chargeDeclined", actor="alice")
    if state == State.PROCESSING:
        return await payments.authorize(T, intent.id, card="tok_visa", actor="alice")
    return intent


async def act(payments: Payments, action: Action, intent: Intent) -> Intent:
    if action == Action.AUTHORIZE:
        return await payments.authorize(T, intent.id, card="tok_visa", actor="alice")
    if action == Action.CAPTURE:
        return await payments.capture(T, intent.id, actor="alice")
    if action == Action.CANCEL:
        return await payments.cancel(T, intent.id, actor="alice", reason="abandoned")
    return (await payments.refund(T, intent.id, amount_minor=400, refund_key=f"k-{intent.id}", actor="alice",
                                  reason="returned"))[0]


async def events(payments: Payments, intent: Intent) -> list[str]:
    async with payments.pool.acquire() as conn:
        return [row["type"] for row in await conn.fetch(
            "SELECT type FROM payment_outbox WHERE body->'intent'->>'id' = $1 ORDER BY position", str(intent.id))]


@pytest.mark.parametrize("action", list(Action))
def test_every_action_from_every_state(database_url: str, acquirer: RunningAcquirer, action: Action) -> None:
    """Allowed: the action reaches one of its ends through the provider. Refused: 409 with the state, and
    neither the intent nor its events change."""
    async def work(payments: Payments) -> None:
        for state in State:
            intent = await in_state(payments, acquirer, state, f"{action}-{state}")
            assert intent.state == state
            before = await events(payments, intent)
            if state in STARTS[action]:
                after = await act(payments, action, intent)
                assert after.state in ENDS[action], (action, state, after)
                assert after.pending is None and after.last_error is None
                assert (await events(payments, intent))[-1] in (f"payment.{after.state}", "payment.refund")
            else:
                with pytest.raises(Refused) as refused:
                    await act(payments, action, intent)
                assert refused.value.state == state
                async with payments.pool.acquire() as conn:
                    assert await intents.by_id(conn, T, intent.id) == intent
                assert await events(payments, intent) == before
    in_payments(database_url, acquirer.url, work)


def test_amounts_move_as_the_provider_says(database_url: str, acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        partial = await payments.create(T, S, tender_id="half", method="card", amount_minor=1000, currency="EUR",
                                        actor="alice")
        partial = await payments.authorize(T, partial.id, card="tok_partial", actor="alice")
        assert (partial.state, partial.authorized_minor) == (State.AUTHORIZED, 500)
        with pytest.raises(Refused, match="between 1 and the 500 authorized"):
            await payments.capture(T, partial.id, amount_minor=501, actor="alice")
        captured = await payments.capture(T, partial.id, amount_minor=300, actor="alice")
        assert (captured.state, captured.captured_minor) == (State.CAPTURED, 300)
        once, refund = await payments.refund(T, captured.id, amount_minor=100, refund_key="r1", actor="alice",
                                             reason=None)
        assert (once.state, once.refunded_minor, refund.state, refund.via) == (State.CAPTURED, 100, "succeeded",
                                                                                "provider")
        with pytest.raises(Refused, match="between 1 and the 200 left"):
            await payments.refund(T, captured.id, amount_minor=201, refund_key="r2", actor="alice", reason=None)
        done, _ = await payments.refund(T, captured.id, amount_minor=200, refund_key="r2", actor="alice", reason=None)
        assert (done.state, done.refunded_minor) == (State.REFUNDED, 300)
        assert await events(payments, done) == ["payment.awaiting_payment_method", "payment.processing",
                                                 "payment.authorized", "payment.processing", "payment.captured",
                                                 "payment.processing", "payment.captured", "payment.refund",
                                                 "payment.processing", "payment.refunded", "payment.refund"]
    in_payments(database_url, acquirer.url, work)


def test_the_same_tender_or_refund_key_is_one_payment(database_url: str, acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        first = await payments.create(T, S, tender_id="t1", method="card", amount_minor=1000, currency="EUR",
                                      actor="alice")
        again = await payments.create(T, S, tender_id="t1", method="card", amount_minor=1000, currency="EUR",
                                      actor="alice")
        assert again.id == first.id
        with pytest.raises(Conflict, match="amount_minor"):
            await payments.create(T, S, tender_id="t1", method="card", amount_minor=999, currency="EUR", actor="a")
        card = await approved(payments, acquirer, "t2")
        same = await payments.record_terminal_approval(
            T, S, tender_id="t2", till="till-1", amount_minor=1000, authorized_minor=1000, currency="EUR",
            provider_ref="pay_t2", auth_code="123456", scheme="visa", masked="**** 4242", offline=False,
            card_token=None, actor="till:till-1")
        assert same == card
        with pytest.raises(Conflict):
            await payments.record_terminal_approval(
                T, S, tender_id="t2", till="till-1", amount_minor=1000, authorized_minor=1000, currency="EUR",
                provider_ref="pay_other", auth_code=None, scheme=None, masked=None, offline=False, card_token=None,
                actor="till:till-1")
        captured = await payments.capture(T, card.id, actor="alice")
        one, refund = await payments.refund(T, captured.id, amount_minor=250, refund_key="k", actor="alice",
                                            reason=None)
        two, same_refund = await payments.refund(T, captured.id, amount_minor=250, refund_key="k", actor="alice",
                                                 reason=None)
        assert (two.refunded_minor, same_refund) == (250, refund)
        with pytest.raises(Conflict, match="refund key k"):
            await payments.refund(T, captured.id, amount_minor=300, refund_key="k", actor="alice", reason=None)
        async with payments.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM payment_refunds") == 1
        assert acquirer.payment("pay_t2")["refunded_minor"] == 250
        with pytest.raises(NotFound):
            await payments.capture("other", card.id, actor="alice")  # another tenant's: not found
    in_payments(database_url, acquirer.url, work)


def test_a_lost_answer_is_resolved_by_asking_never_by_charging_again(database_url: str,
                                                                      acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        intent = await payments.create(T, S, tender_id="lost", method="card", amount_minor=LOST, currency="EUR",
                                       actor="alice")
        waiting = await payments.authorize(T, intent.id, card="tok_visa", actor="alice")
        assert (waiting.state, waiting.pending) == (State.PROCESSING, Action.AUTHORIZE)
        assert waiting.pending_key is not None and acquirer.executions(waiting.pending_key) == 1
        with pytest.raises(Refused):  # nothing else may start while the call's outcome is unknown
            await payments.cancel(T, intent.id, actor="alice", reason="impatient")
        resolved = await payments.resolve(intent.id)
        assert (resolved.state, resolved.authorized_minor) == (State.AUTHORIZED, LOST)
        assert resolved.provider_ref and resolved.pending_key is None
        assert acquirer.executions(waiting.pending_key) == 1  # one charge
        assert (await payments.resolve(intent.id)) == resolved  # nothing left to resolve
    in_payments(database_url, acquirer.url, work)


def test_a_call_the_provider_never_saw_is_made_once_more_with_its_key(database_url: str,
                                                                       acquirer: RunningAcquirer) -> None:
    """The hub was killed after committing PROCESSING and before the call went out."""
    async def work(payments: Payments) -> None:
        intent = await approved(payments, acquirer, "crashed")
        async with payments.pool.acquire() as conn, conn.transaction():
            claimed = await payments._begin(conn, intent, Action.CAPTURE, amount=1000, actor="alice", reason=None)
        assert claimed.pending_key is not None and acquirer.executions(claimed.pending_key) == 0
        resolved = await payments.resolve(intent.id)
        assert (resolved.state, resolved.captured_minor) == (State.CAPTURED, 1000)
        assert acquirer.executions(claimed.pending_key) == 1
        async with payments.pool.acquire() as conn:
            audit = await conn.fetch("SELECT actor, action FROM audit_records WHERE target = $1", str(intent.id))
        assert [(row["actor"], row["action"]) for row in audit] == [("alice", "payment.captured")]
    in_payments(database_url, acquirer.url, work)


def test_an_outcome_still_unknown_is_surfaced_for_a_person(database_url: str, acquirer: RunningAcquirer) -> None:
    async def lose(payments: Payments) -> Intent:
        intent = await payments.create(T, S, tender_id="stuck", method="card", amount_minor=LOST, currency="EUR",
                                       actor="alice")
        return await payments.authorize(T, intent.id, card="tok_visa", actor="alice")
    waiting = in_payments(database_url, acquirer.url, lose)

    async def cannot_ask(payments: Payments) -> None:  # the provider is out of reach: its status cannot be asked
        assert (await payments.resolve(waiting.id)).attention is None  # not yet ten watchdog periods
        async with payments.pool.acquire() as conn:
            await conn.execute("UPDATE payment_intents SET pending_since = now() - interval '20 seconds'"
                               " WHERE id = $1", waiting.id)
        surfaced = await payments.resolve(waiting.id)
        assert surfaced.state == State.PROCESSING and surfaced.pending_key == waiting.pending_key
        assert surfaced.attention and "still unknown" in surfaced.attention
    in_payments(database_url, "http://127.0.0.1:9", cannot_ask)

    async def settle(payments: Payments) -> None:
        settled = await payments.resolve(waiting.id)
        assert settled.state == State.AUTHORIZED and settled.attention is None
    in_payments(database_url, acquirer.url, settle)


def test_a_provider_out_of_reach_does_nothing(database_url: str, acquirer: RunningAcquirer) -> None:
    async def approve(payments: Payments) -> Intent:
        return await approved(payments, acquirer, "unreachable")
    intent = in_payments(database_url, acquirer.url, approve)

    async def unreachable(payments: Payments) -> None:
        with pytest.raises(NoProvider, match="could not be reached"):
            await payments.capture(T, intent.id, actor="alice")
        async with payments.pool.acquire() as conn:
            back = await intents.by_id(conn, T, intent.id)
        assert back is not None and back.state == State.AUTHORIZED and back.pending is None
        assert back.last_error and "could not be reached" in back.last_error
    in_payments(database_url, "http://127.0.0.1:9", unreachable)

    async def none(payments: Payments) -> None:
        with pytest.raises(NoProvider, match="no payment provider"):
            await payments.capture(T, intent.id, actor="alice")
        with pytest.raises(NoProvider):
            await payments.cancel(T, intent.id, actor="alice", reason="abandoned")
    in_payments(database_url, "", none)
    assert rows(database_url, "SELECT state FROM payment_intents")[0]["state"] == "authorized"
    assert not rows(database_url, "SELECT 1 FROM payment_refunds")


def test_a_capture_put_back_unreached_is_tried_again_even_when_flagged(database_url: str,
                                                                        acquirer: RunningAcquirer) -> None:
    async def flagged(payments: Payments) -> Intent:
        intent = await approved(payments, acquirer, "flagged")
        async with payments.pool.acquire() as conn:  # a completed sale whose split a person is asked to check
            await conn.execute("UPDATE payment_intents SET order_id = id, attention = 'the split is off'")
        return intent
    intent = in_payments(database_url, acquirer.url, flagged)

    async def unreachable(payments: Payments) -> None:
        with pytest.raises(NoProvider):
            await capture_round(payments)
    in_payments(database_url, "http://127.0.0.1:9", unreachable)

    async def back(payments: Payments) -> None:
        assert await capture_round(payments) == 1
        async with payments.pool.acquire() as conn:
            captured = await intents.by_id(conn, T, intent.id)
        assert captured is not None and captured.state == State.CAPTURED
    in_payments(database_url, acquirer.url, back)


def test_declines_and_offline_approvals(database_url: str, acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        offline = await payments.record_terminal_approval(
            T, S, tender_id="off-1", till="till-1", amount_minor=700, authorized_minor=700, currency="EUR",
            provider_ref=None, auth_code=None, scheme="visa", masked="**** 0002", offline=True,
            card_token="tok_4000000000000002", actor="till:till-1")
        assert (offline.state, offline.offline) == (State.AWAITING_PAYMENT_METHOD, True)
        assert "card_token" not in offline.to_json()
        declined = await payments.authorize(T, offline.id, actor="hub:offline")
        assert declined.state == State.FAILED and declined.card_token is None
        assert declined.attention and "taken offline was declined" in declined.attention
        good = await payments.record_terminal_approval(
            T, S, tender_id="off-2", till="till-1", amount_minor=800, authorized_minor=800, currency="EUR",
            provider_ref=None, auth_code=None, scheme="visa", masked="**** 4242", offline=True, card_token="tok_visa",
            actor="till:till-1")
        authorized = await payments.authorize(T, good.id, actor="hub:offline")
        assert (authorized.state, authorized.authorized_minor, authorized.card_token) == (State.AUTHORIZED, 800, None)
        assert authorized.capture_before is not None
        abandoned = await payments.record_terminal_approval(
            T, S, tender_id="off-3", till="till-1", amount_minor=900, authorized_minor=900, currency="EUR",
            provider_ref="terminal-offline-3", auth_code=None, scheme="visa", masked="**** 4242", offline=True,
            card_token="tok_visa", actor="till:till-1")
        voided = await payments.cancel(T, abandoned.id, actor="bob", reason="sale abandoned")
        assert (voided.state, voided.card_token) == (State.CANCELLED, None)  # the provider never held it: no call
    in_payments(database_url, acquirer.url, work)


def test_the_gauges_count_intents_by_state_and_offline_cards_outstanding(database_url: str,
                                                                         acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        await approved(payments, acquirer, "g1")
        for n, amount in enumerate((700, 1200)):
            await payments.record_terminal_approval(
                T, S, tender_id=f"off-{n}", till="till-1", amount_minor=amount, authorized_minor=amount,
                currency="EUR", provider_ref=None, auth_code=None, scheme=None, masked=None, offline=True,
                card_token="tok_visa", actor="till:till-1")
        await refresh_gauges(payments.pool)
    in_payments(database_url, acquirer.url, work)

    def gauge(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)
    assert gauge("novapos_hub_payment_intents", state="authorized") == 1
    assert gauge("novapos_hub_payment_intents", state="awaiting_payment_method") == 2
    assert gauge("novapos_hub_payment_intents", state="captured") == 0
    assert gauge("novapos_hub_payment_offline_outstanding") == 2
    assert gauge("novapos_hub_payment_offline_outstanding_minor", currency="EUR") == 1900  # one series a currency


def test_refunds_at_the_terminal_and_webhook_news(database_url: str, acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        captured = await payments.capture(T, (await approved(payments, acquirer, "till-refund")).id, actor="alice")
        refunded, refund = await payments.record_terminal_refund(T, captured.id, amount_minor=1000, refund_key="tr",
                                                                 provider_ref="pay_terminal_refund", actor="bob")
        assert (refunded.state, refund.via, refund.state) == (State.REFUNDED, "terminal", "succeeded")
        assert acquirer.payment("pay_till-refund")["refunded_minor"] == 0  # no provider call
        qr = await payments.create(T, S, tender_id="qr-1", method="qr", amount_minor=450, currency="EUR", actor="x")
        async with payments.pool.acquire() as conn, conn.transaction():
            await intents.change(conn, qr, qr.state, provider_ref="qr_123")
        paid = await payments.provider_says("simulator", "qr_123", Outcome.CAPTURED, 450)
        assert paid is not None and (paid.state, paid.captured_minor) == (State.CAPTURED, 450)
        assert await payments.provider_says("simulator", "qr_123", Outcome.CAPTURED, 450) == paid
        assert await payments.provider_says("simulator", "qr_123", Outcome.FAILED, 450) == paid
        assert await payments.provider_says("simulator", "nobody", Outcome.CAPTURED, 1) is None
    in_payments(database_url, acquirer.url, work)
    audit = rows(database_url, "SELECT actor, action, details->>'via' AS via FROM audit_records ORDER BY seq")
    assert [(row["actor"], row["action"], row["via"]) for row in audit] == [
        ("alice", "payment.captured", None), ("bob", "payment.refunded", "terminal")]


def test_auto_void_of_authorizations_past_the_capture_window(database_url: str, acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        old = await approved(payments, acquirer, "old")
        fresh = await approved(payments, acquirer, "fresh")
        async with payments.pool.acquire() as conn:
            await conn.execute("UPDATE payment_intents SET capture_before = $2 WHERE id = $1", old.id,
                               datetime.now(UTC) - timedelta(seconds=1))
        assert await payments.void_expired(10) == 1
        assert await payments.void_expired(10) == 0
        async with payments.pool.acquire() as conn:
            voided, kept = await intents.by_id(conn, T, old.id), await intents.by_id(conn, T, fresh.id)
        assert voided is not None and kept is not None
        assert (voided.state, kept.state) == (State.CANCELLED, State.AUTHORIZED)
        assert acquirer.payment("pay_old")["status"] == "cancelled"
    in_payments(database_url, acquirer.url, work)
    audit = rows(database_url, "SELECT actor, action, target FROM audit_records")
    assert [(row["actor"], row["action"]) for row in audit] == [(AUTO_VOID, "payment.auto_voided")]


def test_auto_void_claims_each_intent_right_before_its_call(database_url: str, acquirer: RunningAcquirer) -> None:
    """A claim made for the whole batch would leave the later intents processing behind the earlier calls."""
    async def work(payments: Payments) -> None:
        first = await approved(payments, acquirer, "first")
        await approved(payments, acquirer, "second")
        async with payments.pool.acquire() as conn:
            await conn.execute("UPDATE payment_intents SET capture_before = now() - make_interval(secs =>"
                               " CASE WHEN id = $1 THEN 2 ELSE 1 END)", first.id)
        assert await payments.void_expired(10) == 2
        async with payments.pool.acquire() as conn:
            written = await conn.fetch("SELECT type, body->'intent'->>'tender_id' AS tender FROM payment_outbox"
                                       " WHERE type IN ('payment.processing', 'payment.cancelled') ORDER BY position")
        assert [(row["type"], row["tender"]) for row in written] == [
            ("payment.processing", "first"), ("payment.cancelled", "first"),
            ("payment.processing", "second"), ("payment.cancelled", "second")]
    in_payments(database_url, acquirer.url, work)


def test_two_hubs_auto_voiding_side_by_side_void_each_once(database_url: str, acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        for n in range(6):
            await approved(payments, acquirer, f"expired-{n}")
        async with payments.pool.acquire() as conn:
            await conn.execute("UPDATE payment_intents SET capture_before = now() - interval '1 second'")
        other_hub = Payments(payments.pool, HttpGateway(acquirer.url, "simulator", 5), payments.settings)
        counts = await asyncio.gather(payments.void_expired(3), other_hub.void_expired(3),
                                      payments.void_expired(3), other_hub.void_expired(3))
        await other_hub.gateway.aclose()  # type: ignore[union-attr]
        assert sum(counts) == 6
        async with payments.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM payment_intents WHERE state = 'cancelled'") == 6
            assert await conn.fetchval("SELECT count(*) FROM audit_records WHERE action = 'payment.auto_voided'") == 6
        assert all(acquirer.payment(f"pay_expired-{n}")["status"] == "cancelled" for n in range(6))
    in_payments(database_url, acquirer.url, work)


def test_stale_intents_are_claimed_by_one_watchdog_at_a_time(database_url: str, acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        lost = await in_state(payments, acquirer, State.PROCESSING, "stale")
        assert await payments.stale(10) == []  # not yet watchdog_after_s old
        async with payments.pool.acquire() as conn:
            await conn.execute("UPDATE payment_intents SET pending_since = now() - interval '60 seconds'")
        assert await payments.stale(10) == [lost.id]
        assert await payments.stale(10) == []  # another hub's turn comes after watchdog_after_s
    in_payments(database_url, acquirer.url, work, watchdog_after_s=30)


def test_one_intent_the_provider_call_raises_on_does_not_stall_the_watchdog(database_url: str,
                                                                           acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        bad = await payments.record_terminal_approval(  # a reference the gateway refuses to send (before the door)
            T, S, tender_id="bad", till="till-1", amount_minor=1000, authorized_minor=1000, currency="EUR",
            provider_ref="pay bad/..", auth_code=None, scheme="visa", masked="**** 4242", offline=False,
            card_token=None, actor="till:till-1")
        with pytest.raises(ValueError):
            await payments.capture(T, bad.id, actor="alice")
        lost = await in_state(payments, acquirer, State.PROCESSING, "lost")
        async with payments.pool.acquire() as conn:
            await conn.execute("UPDATE payment_intents SET pending_since = now() - interval '60 seconds' - "
                               "make_interval(secs => CASE WHEN id = $1 THEN 10 ELSE 0 END)", bad.id)
        assert await resolve_stale(payments) == 2  # the oldest raises: surfaced, and the others are resolved
        async with payments.pool.acquire() as conn:
            stuck, resolved = await intents.by_id(conn, T, bad.id), await intents.by_id(conn, T, lost.id)
        assert stuck is not None and stuck.state == State.PROCESSING
        assert stuck.attention and "could not resolve" in stuck.attention
        assert resolved is not None and resolved.state == State.AUTHORIZED
    in_payments(database_url, acquirer.url, work)


def test_a_capture_or_void_the_provider_declined_is_left_to_a_person(database_url: str,
                                                                      acquirer: RunningAcquirer) -> None:
    async def work(payments: Payments) -> None:
        sold, expired = await approved(payments, acquirer, "sold"), await approved(payments, acquirer, "expired")
        for ref, action in (("pay_sold", "cancel"), ("pay_expired", "capture")):  # moved at the provider meanwhile
            done = httpx.post(f"{acquirer.url}/v1/authorizations/{ref}/{action}", json={}, timeout=10,
                              headers={"Idempotency-Key": f"elsewhere-{ref}"})
            assert done.status_code == 200, done.text
        async with payments.pool.acquire() as conn:
            await conn.execute("UPDATE payment_intents SET order_id = $2 WHERE id = $1", sold.id, sold.id)
            await conn.execute("UPDATE payment_intents SET capture_before = now() - interval '1 second'"
                               " WHERE id = $1", expired.id)
        assert await capture_round(payments) == 1 and await payments.void_expired(10) == 1
        async with payments.pool.acquire() as conn:
            before = await conn.fetchval("SELECT count(*) FROM payment_outbox")
        assert await capture_round(payments) == 0 and await payments.void_expired(10) == 0  # not every round
        async with payments.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM payment_outbox") == before
            for intent in (sold, expired):
                left = await intents.by_id(conn, T, intent.id)
                assert left is not None and left.state == State.AUTHORIZED
                assert left.attention and "declined" in left.attention
    in_payments(database_url, acquirer.url, work)


def test_an_idempotency_key_answers_once(database_url: str) -> None:
    async def work(payments: Payments) -> None:
        pool, calls = payments.pool, []

        async def run() -> tuple[int, dict[str, Any]]:
            calls.append(1)
            return 200, {"n": len(calls)}

        async def busy() -> tuple[int, dict[str, Any]]:
            return 503, {"error": "the provider could not be reached"}
        first = fingerprint("POST", "/api/payments/intents/x/capture", {"amount_minor": 1}, "ada")
        assert await once(pool, T, "k", first, run) == (200, {"n": 1})
        assert await once(pool, T, "k", first, run) == (200, {"n": 1})
        with pytest.raises(Conflict, match="different request"):
            await once(pool, T, "k", fingerprint("POST", "/api/payments/intents/x/capture", {}, "ada"), run)
        with pytest.raises(Conflict, match="different request"):  # another person's request
            await once(pool, T, "k", fingerprint("POST", "/api/payments/intents/x/capture", {"amount_minor": 1},
                                                 "bob"), run)
        assert await once(pool, "other", "k", first, run) == (200, {"n": 2})  # another tenant's key is its own
        await pool.execute("INSERT INTO payment_idempotency (tenant, key, request_hash) VALUES ($1, 'dead', $2)",
                           T, first)  # its hub died while answering
        with pytest.raises(Conflict, match="still being answered"):
            await once(pool, T, "dead", first, run)
        await pool.execute("UPDATE payment_idempotency SET created_at = now() - interval '6 minutes'"
                           " WHERE key = 'dead'")
        assert await once(pool, T, "dead", first, run) == (200, {"n": 3})
        assert (await once(pool, T, "busy", first, busy))[0] == 503  # the hub's trouble is not kept
        assert await once(pool, T, "busy", first, run) == (200, {"n": 4})
        await pool.execute("UPDATE payment_idempotency SET created_at = now() - interval '25 hours' WHERE key = 'k'")
        assert await once(pool, T, "k", first, run) == (200, {"n": 5})  # kept 24 hours
        assert await purge(pool) == 1  # the other tenant's k, past its 24 hours too
    in_payments(database_url, "", work)
