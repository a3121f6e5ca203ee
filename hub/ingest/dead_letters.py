"""Dead letters after the fact: re-driven once their cause is fixed, purged once past their retention.

A re-driven letter goes through the same ingest path as a fresh delivery, so the inbox still decides
whether its event is new; the letter is kept, marked with when it was re-driven and what came of it, and
the mark commits with its dead_letter.redriven audit record in the tenant's chain (a letter whose subject
names no tenant belongs to no chain: only the operator's CLI sees it, and its log line is its record).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
import trio

from edge_runtime import AsyncioSeam
from hub.audit.chain import Entry, record
from hub.ingest.inbox import FORGED, Delivery, ingest

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class Redriven:
    id: int
    outcome: str


class NotRedrivable(LookupError):
    """No such dead letter, or it was re-driven already; the message says which."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def pending(pool: asyncpg.Pool, *, reason_like: str | None = None) -> list[asyncpg.Record]:
    """Letters not yet re-driven, whose reason contains `reason_like` (all of them if None)."""
    return await pool.fetch(
        "SELECT id, received_at, subject, reason FROM dead_letters WHERE redriven_at IS NULL"
        " AND ($1::text IS NULL OR reason ILIKE $1) ORDER BY id", None if reason_like is None else _like(reason_like))


async def redrive(pool: asyncpg.Pool, letter_id: int, tenants: frozenset[str], actor: str = "system") -> Redriven:
    """Re-apply one letter through ingest and mark it, audited as `actor`'s. Raises NotRedrivable, or whatever
    ingest raises for a failure that is not the event's fault (the letter then stays as it was)."""
    row = await pool.fetchrow("SELECT subject, payload, redriven_at, redrive_outcome, tenant, store, reason"
                              " FROM dead_letters WHERE id = $1", letter_id)
    if row is None:
        raise NotRedrivable(f"there is no dead letter {letter_id}", missing=True)
    if row["redriven_at"] is not None:
        raise NotRedrivable(f"dead letter {letter_id} was already re-driven at {row['redriven_at']:%Y-%m-%d %H:%M:%S} "
                            f"({row['redrive_outcome']})", missing=False)
    if row["reason"].startswith(FORGED):  # its leaf's Nats-Stream-Source is not kept: re-driven, it would pass
        raise NotRedrivable(f"dead letter {letter_id} came from another store's leaf node (a forgery): it is never "
                            "re-driven; find out who controls that store's box", missing=False)
    result = await ingest(pool, [Delivery(row["subject"], bytes(row["payload"]))], tenants)
    if result.held:
        raise NotRedrivable(f"dead letter {letter_id} cannot be applied yet: {result.held[0].reason}", missing=False)
    outcome = ("applied" if result.applied else "already applied" if result.duplicates
               else "refused again: see the newer dead letter")
    async with pool.acquire() as conn, conn.transaction():
        marked = await conn.fetchval(
            "UPDATE dead_letters SET redriven_at = now(), redrive_outcome = $2 WHERE id = $1 AND redriven_at IS NULL"
            " RETURNING id", letter_id, outcome)
        if marked is None:  # re-driven concurrently by someone else: the inbox made ours a no-op or theirs
            raise NotRedrivable(f"dead letter {letter_id} was re-driven by someone else meanwhile", missing=False)
        if row["tenant"] is not None:
            await record(conn, Entry(row["tenant"], actor, "dead_letter.redriven", store=row["store"],
                                     target=str(letter_id), details={"id": letter_id, "outcome": outcome}))
    log.info("dead letter %d re-driven by %s: %s", letter_id, actor, outcome)
    return Redriven(letter_id, outcome)


async def purge(pool: asyncpg.Pool, retention_days: int) -> int:
    """Delete dead letters received more than `retention_days` ago; returns how many."""
    deleted: int = await pool.fetchval(
        "WITH gone AS (DELETE FROM dead_letters WHERE received_at < now() - make_interval(days => $1) RETURNING 1)"
        " SELECT count(*) FROM gone", retention_days)
    return deleted


async def run_purge(seam: AsyncioSeam, pool: asyncpg.Pool, retention_days: int) -> None:
    """(trio side) Purge at start and then every PURGE_INTERVAL_S; a failed purge waits for the next round."""
    while True:
        try:
            if deleted := await seam.run(purge, pool, retention_days):
                log.info("purged %d dead letter(s) older than %d days ([dead_letters] retention_days)",
                         deleted, retention_days)
        except Exception as exc:
            log.warning("purging old dead letters failed (%s: %r); trying again in %.0f s",
                        type(exc).__name__, str(exc), PURGE_INTERVAL_S)
        await trio.sleep(PURGE_INTERVAL_S)
