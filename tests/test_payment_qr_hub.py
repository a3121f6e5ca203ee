"""Pay by QR code at the hub: the till's pay_qr starts one checkout at the provider (however often it is asked),
the customer's phone pays or declines on the simulator's page, the signed webhook settles the intent, a QR
payment refunds like any other, and a checkout left unpaid past its expiry is cancelled after asking the
provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from hub.app import run_hub
from hub.payments import qr
from novapos.config import HubConfig
from novapos.wire.ids import uuid7
from novapos.wire.payments import QR, REFUND, STATUS
from tests.conftest import query, wait_until
from tests.payments_hub import STORE, ask, audit_actions, intent_state, payments_hub, webhook_url


def _request(amount_minor: int = 1250, tender_id: str | None = None) -> dict[str, Any]:
    return {"tender_id": tender_id or str(uuid7()), "till": "till-1", "amount_minor": amount_minor,
            "currency": "EUR", "actor": "bob"}


async def test_a_qr_payment_paid_on_the_phone_ends_captured_and_refunds_like_any_other(
        hub_config: HubConfig, tmp_path: Path) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets):
        asked = _request(1250)
        first = await ask(hub_config, "demo", STORE, QR, asked)
        intent = first["intent"]
        assert (intent["method"], intent["state"], intent["amount_minor"], intent["till"]) == \
            ("qr", "awaiting_payment_method", 1250, "till-1")
        assert first["pay_url"].startswith(acquirer.url) and intent["provider_ref"] in first["pay_url"]
        again = await ask(hub_config, "demo", STORE, QR, asked)  # the till asks again after a lost answer
        assert (again["intent"]["id"], again["pay_url"], again["expires_at"]) == \
            (intent["id"], first["pay_url"], first["expires_at"])
        assert await trio.to_thread.run_sync(acquirer.executions, qr.checkout_key(intent["id"])) == 1

        page = await trio.to_thread.run_sync(acquirer.pay, intent["provider_ref"])
        assert "Paid" in page
        status = await ask(hub_config, "demo", STORE, STATUS, {"tender_id": asked["tender_id"]})
        assert (status["intent"]["state"], status["intent"]["captured_minor"]) == ("captured", 1250)
        events = await query(hub_config.database_url, "SELECT type FROM payment_outbox WHERE body->'intent'->>'id' = $1"
                                                      " ORDER BY position", intent["id"])
        assert [row["type"] for row in events][-1] == "payment.captured"

        partly = await ask(hub_config, "demo", STORE, REFUND, {
            "tender_id": asked["tender_id"], "amount_minor": 250, "refund_key": "r-1", "actor": "alice",
            "reason": "one coffee too many"})
        assert (partly["intent"]["state"], partly["intent"]["refunded_minor"]) == ("captured", 250), partly
        rest = await ask(hub_config, "demo", STORE, REFUND, {
            "tender_id": asked["tender_id"], "amount_minor": 1000, "refund_key": "r-2", "actor": "alice",
            "reason": "the rest"})
        assert (rest["intent"]["state"], rest["intent"]["refunded_minor"]) == ("refunded", 1250), rest
        payment = await trio.to_thread.run_sync(acquirer.payment, intent["provider_ref"])
        assert payment["refunded_minor"] == 1250
        assert [action for action, _, _ in await audit_actions(hub_config.database_url)] == \
            ["payment.webhook_accepted"]


async def test_a_qr_payment_declined_on_the_phone_ends_failed(hub_config: HubConfig, tmp_path: Path) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets):
        answer = await ask(hub_config, "demo", STORE, QR, _request(990))
        intent = answer["intent"]
        assert "declined" in await trio.to_thread.run_sync(acquirer.decline, intent["provider_ref"])
        assert await intent_state(hub_config.database_url, intent["id"]) == "failed"
        # the page cannot be paid after its decline, and the till cannot start it again
        assert "failed" in await trio.to_thread.run_sync(acquirer.pay, intent["provider_ref"])
        assert await intent_state(hub_config.database_url, intent["id"]) == "failed"


async def test_bad_qr_requests_are_refused_and_change_nothing(hub_config: HubConfig, tmp_path: Path) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, _acquirer, _secrets):
        for bad in [{**_request(), "amount_minor": 0}, {**_request(), "amount_minor": 1.5},
                    {**_request(), "currency": "euro"}, {**_request(), "tender_id": "a.b"},
                    {**_request(), "actor": "hub:me"}, {**_request(), "till": ""}]:
            answer = await ask(hub_config, "demo", STORE, QR, bad)
            assert answer["error"]["code"] == 400, (bad, answer)
        asked = _request(500)
        await ask(hub_config, "demo", STORE, QR, asked)
        other = await ask(hub_config, "demo", STORE, QR, {**asked, "amount_minor": 600})  # the tender id reused
        assert other["refused"]["code"] == 409, other
        assert len(await query(hub_config.database_url, "SELECT 1 FROM payment_intents")) == 1


async def test_a_checkout_expired_unpaid_is_cancelled_at_the_provider_and_one_paid_is_not(
        hub_config: HubConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qr, "SWEEP_EVERY_S", 0.2)
    async with payments_hub(hub_config, tmp_path) as (hub, acquirer, _secrets):
        unpaid = (await ask(hub_config, "demo", STORE, QR, _request(700)))["intent"]
        paid = (await ask(hub_config, "demo", STORE, QR, _request(800)))["intent"]
        # the customer pays the second just before it expires, and its webhook is held up on the way
        await trio.to_thread.run_sync(lambda: acquirer.control("webhook_url", url=""))
        assert "Paid" in await trio.to_thread.run_sync(acquirer.pay, paid["provider_ref"])
        await query(hub_config.database_url, "UPDATE payment_qr_checkouts SET expires_at = now() - interval '1 s'")

        async def swept() -> bool:  # the paid one's cancel refused by the provider: asked again later, not cancelled
            [held] = await query(hub_config.database_url, "SELECT expires_at > now() AS later FROM"
                                                          " payment_qr_checkouts WHERE intent_id = $1::uuid", paid["id"])
            return held["later"] and await intent_state(hub_config.database_url, unpaid["id"]) == "cancelled"
        await wait_until(swept)
        assert acquirer.acquirer.checkouts[unpaid["provider_ref"]].status == "cancelled"  # its page takes no money
        assert "cancelled" in await trio.to_thread.run_sync(acquirer.pay, unpaid["provider_ref"])
        assert await intent_state(hub_config.database_url, paid["id"]) == "awaiting_payment_method"
        [event] = (await trio.to_thread.run_sync(acquirer.state))["webhooks"]
        await trio.to_thread.run_sync(lambda: acquirer.control("webhook_url", url=webhook_url(hub)))
        assert await trio.to_thread.run_sync(acquirer.replay, event) == 200  # the provider's retry arrives
        assert await intent_state(hub_config.database_url, paid["id"]) == "captured"


async def test_a_hub_with_no_provider_refuses_qr_payments_and_records_nothing(hub_config: HubConfig) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        answer = await ask(hub_config, "demo", STORE, QR, _request())
        nursery.cancel_scope.cancel()
    assert answer["refused"]["code"] == 503 and "take card or cash" in answer["refused"]["message"], answer
    assert not await query(hub_config.database_url, "SELECT 1 FROM payment_intents")
