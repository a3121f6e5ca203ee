"""The nightly reconciliation in running hubs (real PostgreSQL, NATS and the acquirer simulator): once
[payments] reconcile_at has passed, the day before is reconciled once per tenant however many hubs run; a provider
out of reach is a failed run said once and tried again until it answers; the console lists the run, shows its
items and runs one now."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio

from hub.app import run_hub
from hub.payments import nightly
from hub.payments.service import Payments
from mocks.acquirer import Acquirer, AcquirerServer
from novapos.config import HubConfig
from novapos.config.hub import PaymentSettings
from novapos.wire.ids import uuid7
from tests.acquirer_support import RunningAcquirer
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.identity import add_user, grant, signed_in
from tests.payment_support import in_payments
from tests.stock_world import build_world

PAST = "00:00"  # reconcile_at already passed today, whenever the test runs


def with_provider(config: HubConfig, url: str) -> HubConfig:
    return replace(config, payments=PaymentSettings(gateway_url=url, reconcile_at=PAST))


async def nightly_runs(database_url: str) -> list[tuple[str, str]]:
    """The nightly runs for the day before the one the hub's clock now reads (read each time: a suite may pass
    midnight)."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    rows = await query(database_url, "SELECT status, coalesce(error, '') AS error FROM reconciliation_runs WHERE"
                                     " trigger = 'nightly' AND day = $1 ORDER BY id", yesterday)
    return [(row["status"], row["error"]) for row in rows]


async def test_two_hubs_reconcile_the_day_before_once(hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    server = AcquirerServer(Acquirer(["whsec_test"])).start()
    try:
        config = with_provider(hub_config, server.url)
        async with trio.open_nursery() as nursery:
            first = await nursery.start(run_hub, config)
            await nursery.start(run_hub, config)
            await wait_until(lambda: nightly_runs(hub_config.database_url))
            await trio.sleep(1.0)  # the second hub has had its chance too
            assert await nightly_runs(hub_config.database_url) == [("clean", "")]

            await build_world(hub_config.database_url)
            async with httpx.AsyncClient(base_url=first.url, timeout=30) as admin:
                await sign_in_admin(admin, first.url, hub_config.database_url)
                listed = (await admin.get("/api/payments/reconciliations")).json()
                [run] = listed["items"]
                assert (run["day"], run["trigger"], run["actor"], run["status"]) == (
                    (datetime.now(UTC) - timedelta(days=1)).date().isoformat(), "nightly", "hub:reconcile", "clean")
                today = datetime.now(UTC).date().isoformat()
                await trio.to_thread.run_sync(lambda: RunningAcquirer(server).drift(
                    "extra", day=today, provider_ref="pay_unknown", amount_minor=4200))
                made = await admin.post("/api/payments/reconciliations", json={"day": today})
                assert made.status_code == 201, made.text
                body = made.json()
                assert (body["day"], body["trigger"], body["status"], body["items"]) == (today, "console", "drift", 1)
                shown = (await admin.get(f"/api/payments/reconciliations/{body['id']}")).json()
                assert [(item["kind"], item["provider_ref"], item["provider_amount_minor"]) for item in shown["drift"]] \
                    == [("extra", "pay_unknown", 4200)] and shown["hidden"] == 0
                await add_user(hub_config.database_url, "mona", grant("store_manager", "store-001"))
                async with signed_in(first.url, "mona") as manager:  # the item names no store: not in her reach
                    narrowed = (await manager.get(f"/api/payments/reconciliations/{body['id']}")).json()
                    assert (narrowed["items"], narrowed["drift"], narrowed["hidden"]) == (1, [], 1)
                    refused = await manager.post("/api/payments/reconciliations", json={"day": today})
                    assert refused.status_code == 403 and "payments.manage" in refused.json()["error"]
                refused = await admin.post("/api/payments/reconciliations", json={"day": "2020-01-01"})
                assert refused.status_code == 400 and "day must be from" in refused.json()["error"]
                refused = await admin.post("/api/payments/reconciliations", json={"day": today, "x": 1})
                assert refused.status_code == 400 and "is not a field here" in refused.json()["error"]
                assert (await admin.get("/api/payments/reconciliations?limit=1")).json()["next"] is not None
                metrics = (await http.get(f"{first.url}/metrics")).text
                assert 'novapos_hub_payment_drift_items{tenant="demo"} 1.0' in metrics
            nursery.cancel_scope.cancel()
    finally:
        server.stop()


async def test_a_provider_away_is_said_once_and_tried_again_until_it_answers(
        hub_config: HubConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(nightly, "RETRY", replace(nightly.RETRY, initial=0.2, maximum=0.2))
    server = AcquirerServer(Acquirer(["whsec_test"])).start()
    url = server.url
    server.stop()  # nobody answers at that address for a while
    with caplog.at_level(logging.INFO, logger="hub.payments.nightly"):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_hub, with_provider(hub_config, url))

            async def failed_twice() -> bool:
                return len(await nightly_runs(hub_config.database_url)) >= 2
            await wait_until(failed_twice)
            port = int(url.rsplit(":", 1)[1])
            again = AcquirerServer(Acquirer(["whsec_test"]), port=port).start()
            try:
                async def clean() -> bool:
                    return ("clean", "") in await nightly_runs(hub_config.database_url)
                await wait_until(clean)
            finally:
                again.stop()
            nursery.cancel_scope.cancel()
    runs = await nightly_runs(hub_config.database_url)
    assert runs[-1] == ("clean", "") and all(status == "failed" for status, _ in runs[:-1])
    assert "could not be read" in runs[0][1]
    warnings = [r.getMessage() for r in caplog.records if r.name == "hub.payments.nightly" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "check PostgreSQL and the payment provider" in warnings[0]
    assert any("works again" in r.getMessage() for r in caplog.records if r.name == "hub.payments.nightly")


def test_the_nightly_run_catches_up_the_days_since_its_last_one_at_most_a_week(database_url: str) -> None:
    due = datetime(2026, 3, 10, tzinfo=UTC).date()

    async def owed(payments: Payments) -> list[list[str]]:
        days = [[day.isoformat() for day in await nightly.days_owed(payments.pool, "demo", "simulator", due)]]
        for day, status in ((due - timedelta(days=30), "clean"), (due - timedelta(days=3), "drift"),
                            (due - timedelta(days=1), "failed")):
            await payments.pool.execute(
                "INSERT INTO reconciliation_runs (id, tenant, provider, day, trigger, actor, status, finished_at)"
                " VALUES ($1, 'demo', 'simulator', $2, 'nightly', 'hub:reconcile', $3, now())", uuid7(), day, status)
            days.append([day.isoformat() for day in await nightly.days_owed(payments.pool, "demo", "simulator",
                                                                            due)])
        return days
    never, month, days, failed = in_payments(database_url, "", owed)
    assert never == ["2026-03-10"]  # never reconciled nightly: only the due day
    assert month == [f"2026-03-{n:02}" for n in range(4, 11)]  # a month ago: the last week only
    assert days == failed == ["2026-03-08", "2026-03-09", "2026-03-10"]  # a failed run is owed again
