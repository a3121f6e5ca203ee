"""Reconciliation runs against a real PostgreSQL and the acquirer simulator over a real socket: a clean day, one
injected mismatch of each kind (the simulator's drift controls and a capture the hub has that the provider
lost), the nightly run made once however many hubs claim it, and a provider that cannot be reached."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import tomli_w

from hub.db import close_pool, create_pool, migrate
from hub.payments.acquirer import HttpGateway
from hub.payments.reconciliation import DRIFT_ITEMS, one, run
from hub.payments.watchdog import refresh_gauges
from tests.acquirer_support import RunningAcquirer, running_acquirer

T = TypeVar("T")


def today() -> date:
    """Read when a test starts, not at import: a suite that runs past midnight must not reconcile yesterday."""
    return datetime.now(UTC).date()


def with_world(database_url: str, acquirer_url: str,
               test: Callable[[asyncpg.Pool, HttpGateway], Awaitable[T]]) -> T:
    async def main() -> T:
        pool = await create_pool(database_url, max_size=4)
        gateway = HttpGateway(acquirer_url, "simulator", 5.0)
        try:
            await migrate(pool)
            return await test(pool, gateway)
        finally:
            await gateway.aclose()
            await close_pool(pool)
    return asyncio.run(main())


async def captured(pool: asyncpg.Pool, gateway: HttpGateway, amount: int, *, card: str = "tok_visa",
                   store: str = "store-001", tenant: str = "demo") -> str:
    """A card payment authorized and captured at the provider, and the hub's intent saying so; its ref."""
    answer = await gateway.authorize(f"auth-{uuid.uuid4()}", amount, "EUR", card)
    await gateway.capture(f"capture-{uuid.uuid4()}", answer.provider_ref, amount)
    await pool.execute(
        "INSERT INTO payment_intents (id, tenant, store, tender_id, method, currency, amount_minor, authorized_minor,"
        " captured_minor, state, provider, provider_ref) VALUES ($1, $2, $3, $4, 'card', 'EUR', $5, $5, $5,"
        " 'captured', 'simulator', $6)", uuid.uuid4(), tenant, store, f"t-{uuid.uuid4()}", amount,
        answer.provider_ref)
    return answer.provider_ref


async def refunded(pool: asyncpg.Pool, gateway: HttpGateway, ref: str, amount: int) -> str:
    answer = await gateway.refund(f"refund-{uuid.uuid4()}", ref, amount)
    intent = await pool.fetchrow("UPDATE payment_intents SET refunded_minor = refunded_minor + $2 WHERE provider_ref"
                                 " = $1 RETURNING id, tenant", ref, amount)
    await pool.execute("INSERT INTO payment_refunds (id, intent_id, tenant, refund_key, amount_minor, state, via,"
                       " provider_ref, actor) VALUES ($1, $2, $3, $4, $5, 'succeeded', 'provider', $6, 'test')",
                       uuid.uuid4(), intent["id"], intent["tenant"], f"rk-{uuid.uuid4()}", amount, answer.provider_ref)
    return answer.provider_ref


def test_a_clean_day_then_one_mismatch_of_each_kind(database_url: str) -> None:
    day = today()
    with running_acquirer() as acquirer:
        async def test(pool: asyncpg.Pool, gateway: HttpGateway) -> None:
            refs = [await captured(pool, gateway, amount) for amount in (1250, 800, 430)]
            await refunded(pool, gateway, refs[0], 250)
            await captured(pool, gateway, 999, tenant="other")  # another tenant's payment: not ours to report
            clean = await run(pool, gateway, "demo", day, trigger="command", actor="cli:test")
            assert clean is not None and clean.drift == []
            assert (clean.run["status"], clean.run["items"], clean.run["hub_movements"],
                    clean.run["provider_lines"]) == ("clean", 0, 4, 4)
            assert DRIFT_ITEMS.labels("demo")._value.get() == 0

            failing = await captured(pool, gateway, 660, card="tok_settlementFails")  # state: failed after capture
            lost = await captured(pool, gateway, 510)
            inject(acquirer, "drop", lost, day)  # missing
            inject(acquirer, "amount", refs[1], day, amount_minor=801)  # amount
            inject(acquirer, "extra", "pay_nobodyknows", day, amount_minor=4200)  # extra
            report = await run(pool, gateway, "demo", day, trigger="console", actor="admin")
            assert report is not None
            found = {(item.kind.value, item.provider_ref) for item in report.drift}
            assert found == {("missing", lost), ("amount", refs[1]), ("extra", "pay_nobodyknows"),
                             ("state", failing)}
            assert (report.run["status"], report.run["items"]) == ("drift", 4)
            assert DRIFT_ITEMS.labels("demo")._value.get() == 4
            async with pool.acquire() as conn:
                kept = await one(conn, "demo", report.run["id"])
                assert kept is not None
                assert [item["kind"] for item in kept["drift"]] == [item.kind.value for item in report.drift]
                amount = next(item for item in kept["drift"] if item["kind"] == "amount")
                assert (amount["hub_amount_minor"], amount["provider_amount_minor"], amount["store"]) == (
                    800, 801, "store-001")
                assert await one(conn, "other", report.run["id"]) is None  # another tenant's run is not found
                audited = await conn.fetch("SELECT actor, target, details FROM audit_records WHERE tenant = 'demo' AND"
                                           " action = 'payment.reconciled' ORDER BY seq")
            assert [(row["actor"], row["target"]) for row in audited] == [("cli:test", clean.run["id"]),
                                                                          ("admin", report.run["id"])]
            assert '"extra": 1' in audited[1]["details"] and '"items": 4' in audited[1]["details"]

            DRIFT_ITEMS.labels("demo").set(0)  # as in another hub process, which ran nothing
            await refresh_gauges(pool)
            assert DRIFT_ITEMS.labels("demo")._value.get() == 4
            older = await run(pool, gateway, "demo", day - timedelta(days=1), trigger="command", actor="cli:test")
            assert older is not None and older.run["status"] == "clean"
            assert DRIFT_ITEMS.labels("demo")._value.get() == 4  # the latest day's figure stands
        with_world(database_url, acquirer.url, test)


def inject(acquirer: RunningAcquirer, change: str, ref: str, day: date, amount_minor: int = 0) -> None:
    acquirer.drift(change, day=day.isoformat(), provider_ref=ref, amount_minor=amount_minor)


def test_a_payment_voided_at_the_hub_but_settled_by_the_provider_is_a_state_drift(database_url: str) -> None:
    day = today()
    with running_acquirer() as acquirer:
        async def test(pool: asyncpg.Pool, gateway: HttpGateway) -> list[Any]:
            ref = await captured(pool, gateway, 1500)
            await pool.execute("UPDATE payment_intents SET state = 'cancelled', captured_minor = 0, captured_at ="
                               " now() - interval '3 days' WHERE provider_ref = $1", ref)
            report = await run(pool, gateway, "demo", day, trigger="command", actor="cli:test")
            assert report is not None
            return [(item.kind.value, item.hub_state, item.provider_state) for item in report.drift]
        assert with_world(database_url, acquirer.url, test) == [("state", "cancelled", "settled")]


def test_a_line_another_tenant_also_holds_is_still_compared_for_this_one(database_url: str) -> None:
    day = today()
    with running_acquirer() as acquirer:
        async def test(pool: asyncpg.Pool, gateway: HttpGateway) -> None:
            ref = await captured(pool, gateway, 700)
            await pool.execute(  # the same reference at another tenant (a provider's or a store's mistake)
                "INSERT INTO payment_intents (id, tenant, store, tender_id, method, currency, amount_minor,"
                " authorized_minor, captured_minor, state, provider, provider_ref) VALUES ($1, 'other', 'o-1', 't-o',"
                " 'card', 'EUR', 700, 700, 700, 'captured', 'simulator', $2)", uuid.uuid4(), ref)
            inject(acquirer, "amount", ref, day, amount_minor=701)
            report = await run(pool, gateway, "demo", day, trigger="command", actor="cli:test")
            assert report is not None
            assert [(item.kind.value, item.provider_ref) for item in report.drift] == [("amount", ref)]
        with_world(database_url, acquirer.url, test)


def test_the_nightly_run_is_made_once_however_many_hubs_claim_it(database_url: str) -> None:
    day = today()
    with running_acquirer() as acquirer:
        async def test(pool: asyncpg.Pool, gateway: HttpGateway) -> None:
            await captured(pool, gateway, 700)
            reports = await asyncio.gather(*(run(pool, gateway, "demo", day, trigger="nightly", actor="hub:reconcile")
                                             for _ in range(4)))
            assert sum(report is not None for report in reports) == 1
            assert await run(pool, gateway, "demo", day, trigger="nightly", actor="hub:reconcile") is None
            # a run cut short (its hub killed) is tried again an hour later
            await pool.execute("UPDATE reconciliation_runs SET status = 'running', finished_at = NULL, started_at ="
                               " now() - interval '2 hours'")
            again = await run(pool, gateway, "demo", day, trigger="nightly", actor="hub:reconcile")
            assert again is not None and again.run["status"] == "clean"
            statuses = await pool.fetch("SELECT status, error FROM reconciliation_runs ORDER BY id")
            assert [row["status"] for row in statuses] == ["failed", "clean"]
            assert "cut short" in statuses[0]["error"]
            assert await pool.fetchval("SELECT count(*) FROM audit_records") == 0  # the hub's own runs: not audited
        with_world(database_url, acquirer.url, test)


def test_a_provider_out_of_reach_is_a_failed_run_that_the_nightly_may_try_again(database_url: str) -> None:
    with running_acquirer() as acquirer:
        url = acquirer.url
    day = today() - timedelta(days=1)

    async def test(pool: asyncpg.Pool, gateway: HttpGateway) -> None:
        failed = await run(pool, gateway, "demo", day, trigger="nightly", actor="hub:reconcile")
        assert failed is not None and failed.failed and failed.drift == []
        assert "could not be read" in failed.run["error"]
        assert await run(pool, gateway, "demo", day, trigger="nightly", actor="hub:reconcile") is not None
    with_world(database_url, url, test)


def reconcile_command(config: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOVAPOS_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "novapos.cli", "hub", "--config", str(config), "payments",
                           "reconcile", *args], capture_output=True, text=True, timeout=120, env=env)


def test_the_command_prints_the_report_and_exits_1_on_drift(database_url: str, tmp_path: Path) -> None:
    day = today()
    with running_acquirer() as acquirer:
        config = tmp_path / "hub.toml"
        config.write_text(tomli_w.dumps({"tenants": ["demo"], "payments": {"gateway_url": acquirer.url}}))

        async def pay(pool: asyncpg.Pool, gateway: HttpGateway) -> str:
            return await captured(pool, gateway, 1999)
        ref = with_world(database_url, acquirer.url, pay)
        clean = reconcile_command(config, database_url, "--day", day.isoformat())
        assert clean.returncode == 0, clean.stderr
        assert f"demo {day.isoformat()} (simulator): 0 drift item(s) in 1 hub movement(s) and 1 settlement line(s)" in clean.stdout
        inject(acquirer, "amount", ref, day, amount_minor=1990)
        drift = reconcile_command(config, database_url, "--day", day.isoformat(), "--tenant", "demo")
        assert drift.returncode == 1, drift.stderr
        assert "1 drift item(s)" in drift.stdout and f"amount  capture {ref} at store-001" in drift.stdout
        for bad in (("--day", "2026-13-01"), ("--day", "yesterday"), ("--tenant", "de mo")):
            refused = reconcile_command(config, database_url, *bad)
            assert refused.returncode == 2 and "novapos hub payments reconcile: " in refused.stderr
    away = reconcile_command(config, database_url, "--day", day.isoformat())  # the simulator has stopped
    assert away.returncode == 2 and "not reconciled: the provider's settlement report" in away.stderr
