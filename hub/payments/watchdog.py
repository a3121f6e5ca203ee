"""The payments' periodic jobs, each run by one hub process at a time (hub.leases), and their gauges (every process):

- auto-void cancels authorizations left uncaptured past their capture window (a sale that never completed at the
  hub): the card's hold is released rather than left to lapse at the bank, and it is audited;
- the pending watchdog resolves intents PROCESSING for longer than [payments] watchdog_after_s by asking the
  provider how their call ended (hub.payments.service.Payments.resolve), surfacing those still unknown for a
  person; it also forgets idempotency keys past their 24 hours;
- every hub process refreshes the intents' gauges and the reconciliation drift gauge (from the database).

Two hubs running a job side by side (a lease holder that stalled past its deadline and the one that took over) do
no harm: auto-void claims its intents with FOR UPDATE SKIP LOCKED and the watchdog marks each intent it takes
(`checked_at`), so each is handled by one hub at a time. All outlive PostgreSQL,
NATS or the provider going away: they say so once, back off, and carry on when it is back.
"""

from __future__ import annotations

import json
import logging

import asyncpg
import trio

from hub.console.context import Console
from hub.payments import idempotency, metrics, provider, reconciliation
from hub.payments.service import NoProvider, Payments
from hub.repeating import repeat

log = logging.getLogger(__name__)

VOID_EVERY_S = 30.0
BATCH = 100
GAUGES_EVERY_S = 30.0

GAUGES_SQL = """
SELECT (SELECT coalesce(jsonb_object_agg(state, n), '{}') FROM
            (SELECT state, count(*) AS n FROM payment_intents GROUP BY state) AS s)::text AS states,
       (SELECT count(*) FROM payment_intents WHERE attention IS NOT NULL) AS attention,
       (SELECT count(*) FROM payment_intents WHERE offline AND state IN ('awaiting_payment_method', 'processing'))
           AS offline,
       (SELECT coalesce(jsonb_object_agg(currency, minor), '{}') FROM
            (SELECT currency::text, sum(amount_minor) AS minor FROM payment_intents
                WHERE offline AND state IN ('awaiting_payment_method', 'processing') GROUP BY currency) AS o)::text
           AS offline_minor
"""


async def refresh_gauges(pool: asyncpg.Pool) -> None:
    """The intents' gauges and the reconciliation drift, from the database: the same in every hub process."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(GAUGES_SQL)
        metrics.intents_by_state(json.loads(row["states"]), row["attention"], row["offline"],
                                 json.loads(row["offline_minor"]))
        await reconciliation.refresh_drift(conn)


async def resolve_stale(payments: Payments) -> int:
    """Resolve up to BATCH stale PROCESSING intents; how many were taken. One that raises is surfaced for a person
    and the batch carries on (else the oldest would stop every batch)."""
    if payments.gateway is None:
        return 0
    taken = await payments.stale(BATCH)
    for intent_id in taken:
        try:
            resolved = await payments.resolve(intent_id)
        except NoProvider as exc:
            log.warning("payment %s is still processing: %s", intent_id, exc)
            continue
        except Exception as exc:  # this intent's trouble (a reference the provider cannot take): not the others'
            await payments.attend(intent_id, f"the watchdog could not resolve it: {type(exc).__name__}: {exc}")
            continue
        log.info("payment %s resolved by the watchdog: %s%s", intent_id, resolved.state,
                 f" (attention: {resolved.attention})" if resolved.attention else "")
    return len(taken)


async def auto_void(console: Console) -> None:
    payments = provider.serving(console.ready_pool())

    async def step() -> int:
        return await console.seam.run(payments.void_expired, BATCH)
    await repeat("voiding authorizations past their capture window", step, VOID_EVERY_S, BATCH)


async def watch_pending(console: Console) -> None:
    payments = provider.serving(console.ready_pool())
    every_s = max(1.0, payments.settings.watchdog_after_s / 2)
    purge_due = 0.0

    async def step() -> int:
        nonlocal purge_due
        taken = await console.seam.run(resolve_stale, payments)
        if trio.current_time() >= purge_due:
            await console.seam.run(idempotency.purge, payments.pool)
            purge_due = trio.current_time() + GAUGES_EVERY_S
        return taken
    await repeat("resolving payments whose provider call is unknown", step, every_s, BATCH)


async def payment_gauges(console: Console) -> None:
    """The service every hub process runs: its intents' gauges and reconciliation drift, every GAUGES_EVERY_S."""
    pool = console.ready_pool()

    async def step() -> int:
        await console.seam.run(refresh_gauges, pool)
        return 0
    await repeat("refreshing the payment gauges", step, GAUGES_EVERY_S, 1)
