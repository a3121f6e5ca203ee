"""One use of a coupon code: reserved by a till, given back by a void or when its hold ends, confirmed by a sale.

Atomicity (two stores reserving one single-use code at the same moment): the reservation is one transaction that
inserts the use keyed by its redemption id and takes one from the code by a conditional UPDATE (`uses < max_uses`,
active, not expired). PostgreSQL makes the second UPDATE of the same row wait for the first's commit and then
re-check the condition on the row as committed: one of the two wins, the other finds the code used up (409) and
its transaction inserts nothing. The per-customer limit is counted after that UPDATE, while the code's row is
locked, so two reservations of one customer are serialised too.

Idempotency: the redemption id is the key. The same request again answers the same reservation; a redemption id
already holding another code (or another store's) is 409. A release is idempotent, and releasing a use a sale
already confirmed is 409. A sale confirms its coupons' uses whatever their state (a store that sold has sold): a
use released meanwhile takes its use again (`late`, possibly past the limit: counted), one the hub never saw is
recorded (`unknown`), and a promotion's public code accepted offline is counted when its sale arrives. A public
code reserved online (a live promotion's, hub.coupons.promotions) is held like any use, with no limit to take from.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from hub.coupons import metrics
from hub.coupons.codes import mask
from hub.coupons.promotions import public_code
from hub.coupons.refusal import Refused

log = logging.getLogger(__name__)

HOLD = timedelta(minutes=20)
"""How long a reservation waits for its sale: longer than a till's slowest checkout, shorter than a shift."""

_TAKE = ("UPDATE coupon_codes SET uses = uses + 1 WHERE tenant = $1 AND code = $2 AND active"
         " AND (expires_at IS NULL OR expires_at > now()) AND uses < max_uses"
         " RETURNING promotion::text, per_customer")
_KNOWN = "SELECT 1 FROM coupon_redemptions WHERE tenant = $1 AND redemption = $2"
_CUSTOMER_USES = ("SELECT count(*) FROM coupon_redemptions WHERE tenant = $1 AND code = $2 AND customer = $3"
                  " AND state <> 'released' AND redemption <> $4")


def _answer(row: asyncpg.Record) -> dict[str, Any]:
    return {"redemption": row["redemption"], "promotion": row["promotion"], "code": row["code"]}


async def _why_not(conn: asyncpg.Connection, tenant: str, code: str) -> Refused:
    """The refusal of a code the conditional UPDATE did not take."""
    row = await conn.fetchrow("SELECT active, expires_at, uses, max_uses FROM coupon_codes WHERE tenant = $1"
                              " AND code = $2", tenant, code)
    if row is None:  # nor a public code (asked before)
        metrics.RESERVATIONS.labels("unknown").inc()
        return Refused(404, f"there is no coupon {code}: check the code")
    if not row["active"]:
        metrics.RESERVATIONS.labels("blocked").inc()
        return Refused(409, f"coupon {code} has been withdrawn")
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        metrics.RESERVATIONS.labels("expired").inc()
        return Refused(409, f"coupon {code} expired on {row['expires_at']:%Y-%m-%d}")
    metrics.RESERVATIONS.labels("used_up").inc()
    return Refused(409, f"coupon {code} has been used already" if row["max_uses"] == 1
                   else f"coupon {code} has been used its {row['max_uses']} times")


async def _again(conn: asyncpg.Connection, tenant: str, store: str, redemption: str, code: str) -> dict[str, Any]:
    """The answer to a redemption id already known: the same reservation again, or 409."""
    row = await conn.fetchrow("SELECT * FROM coupon_redemptions WHERE tenant = $1 AND redemption = $2",
                              tenant, redemption)
    assert row is not None
    if row["code"] != code or row["store"] != store:
        metrics.RESERVATIONS.labels("conflict").inc()
        raise Refused(409, f"redemption {redemption} is another coupon's: use a new redemption id")
    if row["state"] == "released":
        metrics.RESERVATIONS.labels("conflict").inc()
        raise Refused(409, f"redemption {redemption} was released: use a new redemption id to use the code again")
    metrics.RESERVATIONS.labels("again").inc()
    return _answer(row)


async def reserve(pool: asyncpg.Pool, tenant: str, store: str, *, code: str, redemption: str,
                  customer: uuid.UUID | None, till: str, actor: str) -> dict[str, Any]:
    """Hold one use of `code` for the sale `redemption` belongs to: {redemption, promotion, code}, or Refused."""
    async with pool.acquire() as conn:
        if await conn.fetchval(_KNOWN, tenant, redemption):
            return await _again(conn, tenant, store, redemption, code)
        try:
            async with conn.transaction():
                taken = await conn.fetchrow(_TAKE, tenant, code)
                if taken is None:
                    public = await public_code(conn, tenant, code)
                    if public is None:
                        if await conn.fetchval(_KNOWN, tenant, redemption):  # the same id, reserved meanwhile
                            raise asyncpg.UniqueViolationError(f"redemption {redemption} exists")
                        raise await _why_not(conn, tenant, code)
                    taken = {"promotion": public, "per_customer": None}  # a public code: no limit to take from
                if taken["per_customer"] is not None:
                    if customer is None:
                        metrics.RESERVATIONS.labels("needs_customer").inc()
                        raise Refused(409, f"coupon {code} is for a named customer: attach the customer to the "
                                           "sale first")
                    if await conn.fetchval(_CUSTOMER_USES, tenant, code, customer, redemption) \
                            >= taken["per_customer"]:
                        metrics.RESERVATIONS.labels("customer_limit").inc()
                        raise Refused(409, f"this customer has used coupon {code} as often as it allows "
                                           f"({taken['per_customer']})")
                row = await conn.fetchrow(
                    "INSERT INTO coupon_redemptions (tenant, redemption, code, promotion, customer, store, till, actor,"
                    " state, held_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held', now() + $9::interval)"
                    " RETURNING *", tenant, redemption, code, taken["promotion"], customer, store, till, actor, HOLD)
        except asyncpg.UniqueViolationError:  # the same redemption id reserved at the same moment: its answer
            return await _again(conn, tenant, store, redemption, code)
    metrics.RESERVATIONS.labels("held").inc()
    log.info("coupon held tenant=%s store=%s code=%s redemption=%s", tenant, store, mask(code), redemption)
    return _answer(row)


async def _give_back(conn: asyncpg.Connection, tenant: str, code: str) -> None:
    await conn.execute("UPDATE coupon_codes SET uses = uses - 1 WHERE tenant = $1 AND code = $2 AND uses > 0",
                       tenant, code)


async def release(pool: asyncpg.Pool, tenant: str, store: str, redemption: str) -> dict[str, Any]:
    """The sale did not complete: its held use goes back to the code. Idempotent; a confirmed use is 409. An
    unknown redemption (its reservation never reached the hub), or another store's, changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT code, state FROM coupon_redemptions WHERE tenant = $1 AND redemption = $2"
                                  " AND store = $3 FOR UPDATE", tenant, redemption, store)
        if row is not None and row["state"] == "used":
            raise Refused(409, f"redemption {redemption} is part of a completed sale: it cannot be released")
        if row is not None and row["state"] == "held":
            await conn.execute("UPDATE coupon_redemptions SET state = 'released', updated_at = now() WHERE tenant = $1"
                               " AND redemption = $2", tenant, redemption)
            await _give_back(conn, tenant, row["code"])
            metrics.RELEASES.labels("void").inc()
    return {"released": True}


async def release_expired(pool: asyncpg.Pool, limit: int) -> int:
    """Release up to `limit` holds whose time ended with no sale; how many (the sweeper's step)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "UPDATE coupon_redemptions SET state = 'released', updated_at = now() WHERE (tenant, redemption) IN"
            " (SELECT tenant, redemption FROM coupon_redemptions WHERE state = 'held' AND held_until < now()"
            " ORDER BY held_until LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING tenant, code", limit)
        for row in rows:
            await _give_back(conn, row["tenant"], row["code"])
    if rows:
        metrics.RELEASES.labels("expired").inc(len(rows))
        log.info("released %d coupon hold(s) no sale confirmed within %s", len(rows), HOLD)
    return len(rows)


async def confirm(conn: asyncpg.Connection, tenant: str, store: str, sale_event: uuid.UUID,
                  coupon: dict[str, Any], customer: uuid.UUID | None) -> str:
    """A completed sale's coupon (v5 `coupons[]`): its use confirmed, inside the ingest's transaction; how (the
    USES label). Never refuses: the store has sold."""
    redemption, code = coupon["redemption"], coupon["code"].replace(" ", "").upper()
    if coupon["offline"]:
        how = "offline"
        inserted = await conn.fetchval(
            "INSERT INTO coupon_redemptions (tenant, redemption, code, promotion, customer, store, state, offline,"
            " sale_event) VALUES ($1, $2, $3, $4, $5, $6, 'used', true, $7) ON CONFLICT DO NOTHING RETURNING true",
            tenant, redemption, code, coupon["promotion"], customer, store, sale_event)
        if inserted:
            await conn.execute("UPDATE coupon_codes SET uses = uses + 1 WHERE tenant = $1 AND code = $2", tenant, code)
        return how
    before = await conn.fetchval("SELECT state FROM coupon_redemptions WHERE tenant = $1 AND redemption = $2"
                                 " FOR UPDATE", tenant, redemption)
    if before == "used":
        return "held"
    if before is None:
        how = "unknown"
        await conn.execute(
            "INSERT INTO coupon_redemptions (tenant, redemption, code, promotion, customer, store, state, sale_event)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'used', $7)", tenant, redemption, code, coupon["promotion"], customer,
            store, sale_event)
    else:
        how = "held" if before == "held" else "late"
        await conn.execute("UPDATE coupon_redemptions SET state = 'used', sale_event = $3, held_until = NULL,"
                           " customer = coalesce(customer, $4), updated_at = now() WHERE tenant = $1"
                           " AND redemption = $2", tenant, redemption, sale_event, customer)
    if how != "held":  # the use was not counted on the code (released, or never held): count it now
        await conn.execute("UPDATE coupon_codes SET uses = uses + 1 WHERE tenant = $1 AND code = $2", tenant, code)
        log.warning("a sale confirmed coupon %s redemption %s the hub was not holding (%s) tenant=%s store=%s",
                    mask(code), redemption, how, tenant, store)
    return how
