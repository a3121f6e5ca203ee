"""Reconciliation runs: the I/O around hub.payments.reconcile's comparison.

A run loads the hub's movements of one tenant and day (UTC) from PostgreSQL and the provider's settlement report
of that day from the gateway, compares them, and keeps the run with its drift items (reconciliation_runs,
reconciliation_drift) and an audit record (payment.reconciled) when a person ran it (the console, the command; the
nightly run is the hub's own, like its captures), in one transaction, refreshes the drift gauge from the database, then says so in one log
line. The nightly service, the command and the console's "run now" all come here.

The provider's account may serve several tenants: a line naming another tenant's payment is left to that
tenant's report; a line naming no payment of any tenant is extra in each report (nobody can say whose it is).
Refunds made at a till's terminal with the card present are expected in the report only when the provider
names them (the terminal's own acquirer may settle them apart): the hub asks for the refunds it made itself.
A run that cannot read the report (the provider away) is kept as failed, with the reason, and compares nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Gauge

from hub.audit.chain import Entry, record
from hub.payments.gateway import Gateway, SettlementLine
from hub.payments.reconcile import CAPTURE, REFUND, Drift, HubMovement, compare, counts, needs_day_before
from hub.payments.service import is_person
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

DRIFT_ITEMS = Gauge("novapos_hub_payment_drift_items",
                    "Drift items in the latest run of the tenant's latest reconciled day (0: the provider's settlement agrees)",
                    ["tenant"])
ABANDONED_AFTER = timedelta(hours=1)
"""A nightly run still `running` after this was cut short (its hub died): it may be run again."""

_CAPTURES = """
SELECT id::text AS intent_id, store, provider_ref, captured_minor AS amount_minor, currency, state,
       coalesce(captured_at >= $3 AND captured_at < $4, false) AS on_day
FROM payment_intents WHERE tenant = $1 AND provider = $2 AND provider_ref IS NOT NULL
  AND captured_at >= $3 AND captured_at < $4
UNION
SELECT id::text, store, provider_ref, captured_minor, currency, state,
       coalesce(captured_at >= $3 AND captured_at < $4, false)
FROM payment_intents WHERE tenant = $1 AND provider = $2 AND provider_ref = ANY($5::text[])
"""
_REFUNDS = """
SELECT i.id::text AS intent_id, i.store, i.provider_ref, coalesce(r.provider_ref, '') AS refund_ref, r.amount_minor,
       i.currency, r.state, coalesce(r.via = 'provider' AND r.succeeded_at >= $3 AND r.succeeded_at < $4, false)
       AS on_day
FROM payment_refunds r JOIN payment_intents i ON i.id = r.intent_id
WHERE r.tenant = $1 AND i.provider = $2 AND ((r.via = 'provider' AND r.succeeded_at >= $3 AND r.succeeded_at < $4)
                                             OR r.provider_ref = ANY($5::text[]))
"""
_OTHERS = ("SELECT DISTINCT provider_ref FROM payment_intents p WHERE provider = $1 AND tenant <> $2"
           " AND provider_ref = ANY($3::text[]) AND NOT EXISTS (SELECT 1 FROM payment_intents o WHERE"
           " o.provider = $1 AND o.tenant = $2 AND o.provider_ref = p.provider_ref)")
"""References the lines name that another tenant holds and this one does not (one this tenant holds is compared
here, whoever else holds it: dropping it would hide its mismatch)."""
_LATEST = ("SELECT DISTINCT ON (tenant) tenant, items FROM reconciliation_runs WHERE status IN ('clean', 'drift')"
           " ORDER BY tenant, day DESC, finished_at DESC")
_START = ("INSERT INTO reconciliation_runs (id, tenant, provider, day, trigger, actor, status) "
          "VALUES ($1, $2, $3, $4, $5, $6, 'running')")
_CLAIM = (_START + " ON CONFLICT (tenant, provider, day) WHERE trigger = 'nightly' AND status <> 'failed' DO NOTHING"
          " RETURNING id")
_ABANDON = ("UPDATE reconciliation_runs SET status = 'failed', finished_at = now(), error = 'cut short: the hub "
            "running it stopped' WHERE tenant = $1 AND provider = $2 AND day = $3 AND trigger = 'nightly' "
            "AND status = 'running' AND started_at < now() - $4::interval")
_FINISH = ("UPDATE reconciliation_runs SET status = $2, finished_at = now(), items = $3, hub_movements = $4, "
           "provider_lines = $5, error = $6 WHERE id = $1")
_ITEM = ("INSERT INTO reconciliation_drift (run_id, n, kind, movement, provider_ref, refund_ref, intent_id, store, "
         "currency, hub_amount_minor, provider_amount_minor, hub_state, provider_state, message) "
         "VALUES ($1, $2, $3, $4, $5, $6, $7::uuid, $8, $9, $10, $11, $12, $13, $14)")
RUN_COLUMNS = ("id::text AS id, tenant, provider, day::text AS day, trigger, actor, started_at, finished_at, status, "
               "items, hub_movements, provider_lines, error")
ITEM_COLUMNS = ("n, kind, movement, provider_ref, refund_ref, intent_id::text AS intent_id, store, currency, "
                "hub_amount_minor, provider_amount_minor, hub_state, provider_state, message")


@dataclass(frozen=True)
class Report:
    """One finished run: its row (as the console lists it) and what differed."""
    run: dict[str, Any]
    drift: list[Drift]

    @property
    def failed(self) -> bool:
        return self.run["status"] == "failed"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


async def hub_movements(conn: asyncpg.Connection, tenant: str, provider: str, day: date,
                        lines: list[SettlementLine]) -> list[HubMovement]:
    """The tenant's captures and refunds done on `day`, and any the lines name (of whatever day or state)."""
    start, end = day_bounds(day)
    payments = sorted({line.provider_ref for line in lines})
    refunds = sorted({line.refund_ref for line in lines if line.kind == REFUND and line.refund_ref})
    captured = await conn.fetch(_CAPTURES, tenant, provider, start, end, payments)
    refunded = await conn.fetch(_REFUNDS, tenant, provider, start, end, refunds)
    return ([HubMovement(CAPTURE, **dict(row)) for row in sorted(captured, key=lambda row: row["intent_id"])]
            + [HubMovement(REFUND, **dict(row)) for row in sorted(refunded, key=lambda row: (row["intent_id"],
                                                                                            row["refund_ref"]))])


async def _ours(conn: asyncpg.Connection, tenant: str, provider: str,
                lines: list[SettlementLine]) -> list[SettlementLine]:
    others = {row["provider_ref"] for row in await conn.fetch(
        _OTHERS, provider, tenant, sorted({line.provider_ref for line in lines}))}
    return [line for line in lines if line.provider_ref not in others]


async def run(pool: asyncpg.Pool, gateway: Gateway, tenant: str, day: date, trigger: str,
              actor: str) -> Report | None:
    """Reconcile `tenant`'s `day` now and keep the report. A nightly run is made once per (tenant, provider,
    day) by whichever hub claims it first: None when another already has (or is running it)."""
    started = time.monotonic()
    run_id = uuid7()
    async with pool.acquire() as conn:
        if trigger == "nightly":
            await conn.execute(_ABANDON, tenant, gateway.name, day, ABANDONED_AFTER)
            if await conn.fetchval(_CLAIM, run_id, tenant, gateway.name, day, trigger, actor) is None:
                return None
        else:
            await conn.execute(_START, run_id, tenant, gateway.name, day, trigger, actor)
    try:
        lines = await gateway.settlement(day)
    except Exception as exc:
        error = f"the provider's settlement report of {day} could not be read ({type(exc).__name__}: {exc})"
        return await _finish(pool, run_id, tenant, gateway.name, day, actor, [], 0, 0, error, started)
    async with pool.acquire() as conn:
        lines = await _ours(conn, tenant, gateway.name, lines)
        hub = await hub_movements(conn, tenant, gateway.name, day, lines)
    counted = sum(1 for movement in hub if movement.on_day and movement.done)
    drift = compare(hub, lines)
    if needs_day_before(drift):
        try:
            drift = compare(hub, lines, await gateway.settlement(day - timedelta(days=1)))
        except Exception as exc:
            error = f"the provider's settlement report of {day - timedelta(days=1)} could not be read " \
                    f"({type(exc).__name__}: {exc})"
            return await _finish(pool, run_id, tenant, gateway.name, day, actor, [], 0, 0, error, started)
    return await _finish(pool, run_id, tenant, gateway.name, day, actor, drift, counted, len(lines), None, started)


async def _finish(pool: asyncpg.Pool, run_id: uuid.UUID, tenant: str, provider: str, day: date, actor: str,
                  drift: list[Drift], movements: int, lines: int, error: str | None, started: float) -> Report:
    status = "failed" if error else "drift" if drift else "clean"
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(_ITEM, [
            (run_id, n, item.kind.value, item.movement, item.provider_ref, item.refund_ref, item.intent_id, item.store,
             item.currency, item.hub_amount_minor, item.provider_amount_minor, item.hub_state, item.provider_state,
             item.message) for n, item in enumerate(drift, 1)])
        await conn.execute(_FINISH, run_id, status, len(drift), movements, lines, error)
        if is_person(actor):
            await record(conn, Entry(tenant, actor, "payment.reconciled", target=str(run_id), details={
                "day": day.isoformat(), "provider": provider, "status": status, "items": len(drift),
                **counts(drift), **({"error": error} if error else {})}))
        row = await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM reconciliation_runs WHERE id = $1", run_id)
        await refresh_drift(conn)
    by_kind = " ".join(f"{kind}={count}" for kind, count in counts(drift).items())
    (log.error if error else log.warning if drift else log.info)(
        "payments reconciled run=%s tenant=%s provider=%s day=%s status=%s items=%d %s hub_movements=%d "
        "provider_lines=%d took_ms=%d%s", run_id, tenant, provider, day, status, len(drift), by_kind, movements,
        lines, (time.monotonic() - started) * 1000, f" error={error!r}" if error else "")
    return Report(_jsonable(dict(row)), drift)


async def refresh_drift(conn: asyncpg.Connection) -> None:
    """DRIFT_ITEMS from the database: per tenant, the latest finished run of the latest day reconciled (a failed
    run compared nothing), so that every hub process shows the same figure, and a run that finds the fix clears
    it wherever the alert looks (the watchdog refreshes it with the intents' gauges)."""
    for row in await conn.fetch(_LATEST):
        DRIFT_ITEMS.labels(row["tenant"]).set(row["items"])


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in row.items()}


async def runs(conn: asyncpg.Connection, tenant: str, after: str | None, limit: int) -> list[dict[str, Any]]:
    """The tenant's runs, newest first (their ids are time-ordered), `limit` of them after the run `after`."""
    rows = await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM reconciliation_runs WHERE tenant = $1 AND ($2::uuid IS NULL OR id < $2::uuid) "
        "ORDER BY id DESC LIMIT $3", tenant, after, limit)
    return [_jsonable(dict(row)) for row in rows]


async def one(conn: asyncpg.Connection, tenant: str, run_id: str) -> dict[str, Any] | None:
    """One run with its drift items (every item: the caller narrows them to what the user may see)."""
    row = await conn.fetchrow(f"SELECT {RUN_COLUMNS} FROM reconciliation_runs WHERE tenant = $1 AND id = $2::uuid",
                              tenant, run_id)
    if row is None:
        return None
    items = await conn.fetch(f"SELECT {ITEM_COLUMNS} FROM reconciliation_drift WHERE run_id = $1::uuid ORDER BY n",
                             run_id)
    return {**_jsonable(dict(row)), "drift": [dict(item) for item in items]}
