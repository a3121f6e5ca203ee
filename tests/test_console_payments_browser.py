"""The console's Payments tab in a real headless Chromium (hub, PostgreSQL, NATS and the acquirer simulator): a
tenant admin finds a card payment and the follow-up of an offline approval declined later, captures part of the
payment and refunds some of it through the provider, sets the offline card limits, and reconciles today against
a settlement report with an injected mismatch, reading the drift item. A store manager sees the payments of
their store with no buttons to change them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import trio

from hub.app import RunningHub, run_hub
from hub.payments import provider
from novapos.config import HubConfig
from tests.acquirer_support import RunningAcquirer, running_acquirer
from tests.conftest import query
from tests.identity import add_user, grant
from tests.stock_world import build_world
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import TABLET, Page  # isort: skip  (imports selenium: after the skip above)

DECLINED = "the offline approval was declined later (card declined): ask the customer to pay again"


async def approved(hub: RunningHub, acquirer: RunningAcquirer, amount: int, *, offline: bool = False) -> str:
    """A terminal's approval at till-1 of store-001, recorded by the hub's payment service; the intent's id."""
    reference = f"term_{uuid.uuid4().hex[:16]}"
    if not offline:
        await trio.to_thread.run_sync(acquirer.report_terminal_approval, reference, amount)

    async def record() -> str:
        intent = await provider.serving(hub.pool).record_terminal_approval(
            "demo", "store-001", tender_id=str(uuid.uuid4()), till="till-1", amount_minor=amount,
            authorized_minor=amount, currency="EUR", provider_ref=None if offline else reference, auth_code="123456",
            scheme="visa", masked="**** 4242", offline=offline, card_token="tok_chargeDeclined" if offline else None,
            actor="till:till-1")
        return str(intent.id)
    return await hub.seam.run(record)


def _admin(url: str, intent: str, today: str, acquirer: RunningAcquirer, ref: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with Page(url) as page:
        page.open("#payments")
        page.sign_in("ada")
        page.until(lambda b: "12.50 EUR" in str(page.rows("payment-intents")), "the card payment in the list")
        page.until(lambda b: "declined later" in str(page.rows("payment-follow-ups")), "the follow-up")
        seen["follow-ups"] = page.rows("payment-follow-ups")
        page.screenshot("60-payments")
        page.go(f"#payments/{intent}")
        page.fill({"f-capture-amount": "10.00"})
        page.find("#capture-form button[type=submit]").click()
        page.text_in("status", "Captured: the payment is captured")
        page.fill({"f-refund-amount": "4.00", "f-refund-reason": "a damaged cup"})
        page.find("#refund-form button[type=submit]").click()
        page.text_in("status", "Refunded")
        seen["intent"] = page.find("#view").text
        page.screenshot("61-payment-refunded")
        page.go("#payments")
        page.fill({"f-offline-per-payment": "30.00", "f-offline-store-total": "150.00"})
        page.find("#offline-limits button[type=submit]").click()
        page.text_in("status", "Offline card limits saved: 30.00 EUR per payment, 150.00 EUR per store")
        acquirer.drift("amount", day=today, provider_ref=ref, amount_minor=1001)
        page.find("#to-reconciliations").click()
        page.until(lambda b: b.execute_script("return document.getElementById('view').dataset.item") ==
                   "reconciliations", "the reconciliation runs")
        page.fill({"f-reconcile-day": today})
        page.find("#reconcile-form button[type=submit]").click()
        page.until(lambda b: "amount" in str(page.rows("drift-items")), "the drift item")
        seen["drift"] = page.rows("drift-items")
        seen["run"] = page.find("#view").text
        page.screenshot("62-reconciliation-drift")
        page.go("#payments/reconciliations")
        page.until(lambda b: "1 drift item(s)" in str(page.rows("reconciliation-runs")), "the run in the list")
    return seen


def _manager(url: str, intent: str) -> dict[str, Any]:
    with Page(url, size=TABLET) as page:
        page.open(f"#payments/{intent}")
        page.sign_in("mona")
        page.text_in("view", "Refunded")
        seen = {"view": page.find("#view").text, "forms": page.js("return document.querySelectorAll('#view form').length")}
        page.go("#payments")
        page.until(lambda b: "12.50 EUR" in str(page.rows("payment-intents")), "her store's payments")
        seen["overflow"] = page.overflow()
        page.screenshot("63-payments-tablet")
        return seen


async def test_an_admin_captures_refunds_sets_limits_and_reads_the_drift(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    today = datetime.now(UTC).date().isoformat()
    with running_acquirer() as acquirer:
        config = replace(hub_config, payments=replace(hub_config.payments, gateway_url=acquirer.url))
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, config)
            await build_world(url)
            await add_user(url, "ada", grant("tenant_admin"))
            await add_user(url, "mona", grant("store_manager", "store-001"))
            intent = await approved(hub, acquirer, 1250)
            follow_up = await approved(hub, acquirer, 900, offline=True)
            await query(url, "UPDATE payment_intents SET attention = $2 WHERE id = $1::uuid", follow_up, DECLINED)
            ref = (await query(url, "SELECT provider_ref FROM payment_intents WHERE id = $1::uuid", intent))[0][0]
            seen = await trio.to_thread.run_sync(_admin, hub.url, intent, today, acquirer, ref)
            managed = await trio.to_thread.run_sync(_manager, hub.url, intent)
            nursery.cancel_scope.cancel()

    assert any(DECLINED in " ".join(row) for row in seen["follow-ups"]), seen
    assert "10.00 EUR" in seen["intent"] and "4.00 EUR" in seen["intent"] and "a damaged cup" in seen["intent"], seen
    [item] = seen["drift"]
    assert item[0] == "amount" and ref in item[2] and "10.01 EUR" in item[5] and "10.00 EUR" in item[4], item
    [row] = await query(url, "SELECT state, captured_minor, refunded_minor FROM payment_intents WHERE id = $1::uuid",
                        intent)
    assert tuple(row) == ("captured", 1000, 400)
    actions = [tuple(r) for r in await query(url, "SELECT actor, action FROM audit_records WHERE action LIKE 'payment.%'"
                                                  " ORDER BY seq")]
    assert ("ada", "payment.captured") in actions and ("ada", "payment.refunded") in actions
    assert ("ada", "payment.reconciled") in actions
    [limits] = await query(url, "SELECT offline_per_payment_minor, offline_store_total_minor FROM payment_settings")
    assert tuple(limits) == (3000, 15000)
    assert "Capture, void or refund" not in managed["view"] and managed["forms"] == 0, managed
    assert managed["overflow"] == 0, managed
