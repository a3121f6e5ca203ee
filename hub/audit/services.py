"""The audit domain's periodic jobs, each run by one hub process at a time (hub.leases):

- the checkpointer signs, every [audit] checkpoint_interval_s, each tenant's chain that grew (after
  verifying the records since the last checkpoint); N hubs doing so at once write the same file;
- the retention job deletes personal values older than [audit] personal_retention_days from
  audit_personal (records keep their commitments: the chain still verifies).

Both say once when they start failing (PostgreSQL away, the checkpoint folder not writable), back off and
carry on. Both are safe twice at once (a lease holder stalled past its deadline and the one that took over).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import trio
from prometheus_client import Counter

from edge_runtime import Backoff
from hub.audit.verify import checkpoint_now
from hub.console.context import Console
from novapos.config.hub import AuditSettings

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0
RETRY = Backoff(initial=1.0, maximum=60.0)
CHECKPOINTS = Counter("novapos_hub_audit_checkpoints_total", "Signed audit checkpoints written")
PERSONAL_PURGED = Counter("novapos_hub_audit_personal_purged_total",
                          "Personal values deleted from audit_personal by retention or erasure", ["why"])


async def _every(what: str, interval_s: float, step: Callable[[], Awaitable[None]]) -> None:
    failures = 0
    while True:
        try:
            await step()
        except Exception as exc:
            failures += 1
            if failures == 1:
                log.warning("%s failed (%s: %s); retrying with backoff: check PostgreSQL and the [audit] folders "
                            "if this lasts", what, type(exc).__name__, exc)
            await trio.sleep(min(interval_s, RETRY.delay(failures)))
            continue
        if failures:
            log.info("%s works again after %d failed attempts", what, failures)
            failures = 0
        await trio.sleep(interval_s)


async def checkpoint_tenants(pool: asyncpg.Pool, tenants: frozenset[str],
                             settings: AuditSettings) -> tuple[int, list[str]]:
    """One round: a signed checkpoint for each tenant whose chain grew; how many were written, and why a
    tenant's chain was not signed (it does not verify since its last checkpoint)."""
    written, refused = 0, []
    for tenant in sorted(tenants):
        made = await checkpoint_now(pool, tenant, settings.checkpoint_dir, settings.signing_key)
        if isinstance(made, str):
            refused.append(f"audit chain of {tenant}: {made}")
            log.error("audit checkpoint of %s: %s; run `novapos hub audit verify --tenant %s` and investigate",
                      tenant, made, tenant)
        elif made is not None:
            written += 1
            CHECKPOINTS.inc()
            log.info("signed audit checkpoint of %s at %d records: %s", tenant, made.length, made.path)
    return written, refused


async def purge_personal(pool: asyncpg.Pool, retention_days: int) -> int:
    """Delete personal values of records older than `retention_days`; how many."""
    deleted = int(await pool.fetchval(
        "WITH gone AS (DELETE FROM audit_personal WHERE at < now() - make_interval(days => $1) RETURNING 1)"
        " SELECT count(*) FROM gone", retention_days))
    if deleted:
        PERSONAL_PURGED.labels("retention").inc(deleted)
        log.info("deleted %d personal value(s) of audit records older than %d days ([audit] "
                 "personal_retention_days); the records keep their commitments", deleted, retention_days)
    return deleted


async def checkpointer(console: Console) -> None:
    settings = console.config.audit
    pool = console.ready_pool()

    async def step() -> None:
        await console.seam.run(checkpoint_tenants, pool, console.tenants, settings)
    await _every("signing audit checkpoints", settings.checkpoint_interval_s, step)


async def retention(console: Console) -> None:
    settings = console.config.audit
    pool = console.ready_pool()

    async def step() -> None:
        await console.seam.run(purge_personal, pool, settings.personal_retention_days)
    await _every("purging personal audit values", RETENTION_EVERY_S, step)
