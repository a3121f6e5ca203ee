"""The nightly reconciliation (a periodic job: one hub process at a time, hub.leases): once [payments] reconcile_at (UTC)
has passed, each tenant's day before is reconciled with the provider's settlement report
(hub.payments.reconciliation.run).

The run's row is claimed by one process (a unique index), so a day is reconciled once per tenant even if two
processes tried (a lease holder stalled past its deadline and the one that took over). A hub that was down at reconcile_at catches up when it starts, with every day since
the tenant's last finished nightly run (at most CATCH_UP_DAYS). PostgreSQL or the
provider away: said once, retried with backoff, never the end of the hub. No provider configured: nothing to do.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import trio

from edge_runtime import Backoff
from hub.console.context import Console
from hub.payments import provider
from hub.payments.gateway import Gateway
from hub.payments.reconciliation import run
from hub.payments.service import SYSTEM

log = logging.getLogger(__name__)

RETRY = Backoff(initial=30.0, maximum=900.0)
NIGHTLY = f"{SYSTEM}reconcile"
"""The nightly runs' actor: the hub's own, so not audited (a person's run from the console or the command is)."""
CATCH_UP_DAYS = 7
"""At most this many days are reconciled nightly at once, the due day included (a hub down longer: the command)."""
_LAST_FINISHED = ("SELECT max(day) FROM reconciliation_runs WHERE tenant = $1 AND provider = $2 AND trigger = 'nightly'"
                  " AND status IN ('clean', 'drift')")
LOOK_AGAIN_S = 3600.0
"""At most this long between looks (a clock changed, a run another hub claimed then abandoned)."""


def at_time(text: str) -> time:
    """[payments] reconcile_at (HH:MM, UTC) as a time; ValueError for anything else."""
    hours, _, minutes = text.partition(":")
    if not (len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"reconcile_at={text!r} is not HH:MM")
    return time(int(hours), int(minutes), tzinfo=UTC)


def due_day(now: datetime, at: time) -> date:
    """The latest day whose reconciliation is due at `now`: yesterday once today's `at` has passed, else the
    day before yesterday."""
    shifted = now - timedelta(hours=at.hour, minutes=at.minute)
    return shifted.date() - timedelta(days=1)


def next_due(day: date, at: time) -> datetime:
    """When the day after `day` becomes due."""
    return datetime.combine(day + timedelta(days=2), at)


async def days_owed(pool: asyncpg.Pool, tenant: str, provider_name: str, due: date) -> list[date]:
    """The days the nightly run owes `tenant`, oldest first: each after its last finished nightly run up to `due`,
    at most CATCH_UP_DAYS of them (hubs down over a weekend catch up); only `due` for a tenant never reconciled
    nightly (older days are the command's)."""
    last = await pool.fetchval(_LAST_FINISHED, tenant, provider_name)
    first = due if last is None else max(last + timedelta(days=1), due - timedelta(days=CATCH_UP_DAYS - 1))
    return [first + timedelta(days=n) for n in range((due - first).days + 1)]


async def reconcile_owed(pool: asyncpg.Pool, gateway: Gateway, tenant: str, due: date) -> str | None:
    """Reconcile each day owed to `tenant` up to `due`, oldest first; the first failed run's error (the later days
    wait for it), else None."""
    for day in await days_owed(pool, tenant, gateway.name, due):
        report = await run(pool, gateway, tenant, day, "nightly", NIGHTLY)
        if report is not None and report.failed:
            return str(report.run["error"])
    return None


async def reconcile_nightly(console: Console) -> None:
    at = at_time(console.config.payments.reconcile_at)
    pool = console.ready_pool()
    gateway: Gateway | None = provider.serving(pool).gateway
    if gateway is None:
        log.info("no payment provider ([payments] gateway_url is empty): nothing to reconcile nightly")
        return
    failures = 0
    while True:
        day = due_day(datetime.now(UTC), at)
        try:
            for tenant in sorted(console.tenants):
                error = await console.seam.run(reconcile_owed, pool, gateway, tenant, day)
                if error is not None:
                    raise RuntimeError(error)
        except Exception as exc:
            failures += 1
            if failures == 1:
                log.warning("the nightly reconciliation of %s failed (%s: %s); retrying with backoff: check "
                            "PostgreSQL and the payment provider if this lasts", day, type(exc).__name__, exc)
            await trio.sleep(RETRY.delay(failures))
            continue
        if failures:
            log.info("the nightly reconciliation of %s works again after %d failed attempts", day, failures)
            failures = 0
        wait = (next_due(day, at) - datetime.now(UTC)).total_seconds()
        await trio.sleep(min(max(wait, 1.0), LOOK_AGAIN_S))
