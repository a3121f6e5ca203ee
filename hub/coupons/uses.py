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
from hub.coupons.promotions import public_code, takes_codes
from hub.customers.records import exists as customer_exists
from hub.refusals import Refused

log = logging.getLogger(__name__)

HOLD = timedelta(minutes=20)
"""How long a reservation waits for its sale: longer than a till's slowest checkout, shorter than a shift."""

HOLD_MS = int(HOLD.total_seconds() * 1000)

_TAKE = ("UPDATE coupon_codes SET uses = uses + 1 WHERE tenant = $1 AND code = $2 AND active"
         " AND (expires_at IS NULL OR expires_at > now()) AND uses < max_uses"
         " RETURNING promotion, per_customer, batch")
_KNOWN = "SELECT 1 FROM coupon_redemptions WHERE tenant = $1 AND redemption = $2"
_CUSTOMER_USES = ("SELECT count(*) FROM coupon_redemptions WHERE tenant = $1 AND customer = $3 AND state <> 'released'"
                  " AND redemption <> $4 AND (code = $2 OR batch = $5)")
"""A customer's uses of the code, or of any code of its batch (a batch's per_customer limits the batch)."""


def _answer(row: asyncpg.Record, till_ms: int | None) -> dict[str, Any]:
    """The reservation; to a till that sent its clock, the hold's end on that clock (it renews the hold before
    completing a sale after it)."""
    answer = {"redemption": row["redemption"], "promotion": row["promotion"], "code": row["code"]}
    if till_ms is not None and row["state"] == "held":
        answer["held_until_ms"] = row["till_deadline_ms"]
    return answer


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


async def _again(conn: asyncpg.Connection, tenant: str, store: str, redemption: str, code: str,
                 till_ms: int | None) -> dict[str, Any] | None:
    """The answer to a redemption id already known: the same reservation again, its hold extended (a till renews
    a hold whose deadline passed before its sale completes), or 409. None: the sweeper had released it, so the use
    must be taken again."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM coupon_redemptions WHERE tenant = $1 AND redemption = $2 FOR UPDATE",
                                  tenant, redemption)
        assert row is not None
        if row["code"] != code or row["store"] != store:
            metrics.RESERVATIONS.labels("conflict").inc()
            raise Refused(409, f"redemption {redemption} is another coupon's: use a new redemption id")
        if row["state"] == "released":
            if row["released_why"] == "expired":
                return None
            metrics.RESERVATIONS.labels("conflict").inc()
            raise Refused(409, f"redemption {redemption} was released: use a new redemption id to use the code again")
        if row["state"] == "held" and till_ms is not None:  # a retry of the same ask leaves the same deadline
            row = await conn.fetchrow(
                "UPDATE coupon_redemptions SET held_until = greatest(held_until, now() + $3::interval),"
                " till_deadline_ms = greatest(till_deadline_ms, $4), updated_at = now() WHERE tenant = $1"
                " AND redemption = $2 RETURNING *", tenant, redemption, HOLD, _deadline(till_ms))
    metrics.RESERVATIONS.labels("again").inc()
    return _answer(row, till_ms)


def _deadline(till_ms: int | None) -> int:
    """The hold's end on the till's clock (the hub's clock when an older till sent none)."""
    return (till_ms if till_ms is not None else int(datetime.now(UTC).timestamp() * 1000)) + HOLD_MS


async def reserve(pool: asyncpg.Pool, tenant: str, store: str, *, code: str, redemption: str,
                  customer: uuid.UUID | None, till: str, actor: str, till_ms: int | None = None) -> dict[str, Any]:
    """Hold one use of `code` for the sale `redemption` belongs to: {redemption, promotion, code, held_until_ms},
    or Refused. `till_ms`: the till's clock when it asked (the hold's deadline is kept on that clock too)."""
    async with pool.acquire() as conn:
        if await conn.fetchval(_KNOWN, tenant, redemption):
            if (again := await _again(conn, tenant, store, redemption, code, till_ms)) is not None:
                return again
        if customer is not None and not await customer_exists(conn, tenant, customer):
            metrics.RESERVATIONS.labels("unknown_customer").inc()
            raise Refused(404, f"there is no customer {customer}: find the customer again")
        try:
            async with conn.transaction():
                taken = await conn.fetchrow(_TAKE, tenant, code)
                if taken is not None and not await takes_codes(conn, tenant, taken["promotion"]):
                    metrics.RESERVATIONS.labels("ended").inc()
                    raise Refused(409, f"coupon {code}'s promotion has ended (or is not live): it gives nothing now")
                if taken is None:
                    public = await public_code(conn, tenant, code)
                    if public is None:
                        if await conn.fetchval(_KNOWN + " AND released_why IS DISTINCT FROM 'expired'", tenant,
                                               redemption):  # the same id, reserved meanwhile
                            raise asyncpg.UniqueViolationError(f"redemption {redemption} exists")
                        raise await _why_not(conn, tenant, code)
                    taken = {"promotion": public, "per_customer": None, "batch": None}  # no limit to take from
                if taken["per_customer"] is not None:
                    if customer is None:
                        metrics.RESERVATIONS.labels("needs_customer").inc()
                        raise Refused(409, f"coupon {code} is for a named customer: attach the customer to the "
                                           "sale first")
                    if await conn.fetchval(_CUSTOMER_USES, tenant, code, customer, redemption, taken["batch"]) \
                            >= taken["per_customer"]:
                        metrics.RESERVATIONS.labels("customer_limit").inc()
                        raise Refused(409, f"this customer has used coupon {code} as often as it allows "
                                           f"({taken['per_customer']})")
                row = await conn.fetchrow(
                    "INSERT INTO coupon_redemptions (tenant, redemption, code, promotion, customer, store, till, actor,"
                    " state, held_until, till_deadline_ms, batch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held',"
                    " now() + $9::interval, $10, $11) ON CONFLICT (tenant, redemption) DO UPDATE SET state = 'held',"
                    " held_until = EXCLUDED.held_until, till_deadline_ms = EXCLUDED.till_deadline_ms,"
                    " released_why = NULL, updated_at = now() WHERE coupon_redemptions.state = 'released'"
                    " AND coupon_redemptions.released_why = 'expired' RETURNING *",
                    tenant, redemption, code, str(taken["promotion"]), customer, store, till, actor, HOLD,
                    _deadline(till_ms), taken["batch"])
                if row is None:  # the same id, reserved at the same moment
                    raise asyncpg.UniqueViolationError(f"redemption {redemption} exists")
        except asyncpg.UniqueViolationError:  # the same redemption id reserved at the same moment: its answer
            again = await _again(conn, tenant, store, redemption, code, till_ms)
            assert again is not None
            return again
    metrics.RESERVATIONS.labels("held").inc()
    log.info("coupon held tenant=%s store=%s code=%s redemption=%s", tenant, store, mask(code), redemption)
    return _answer(row, till_ms)


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
            await conn.execute("UPDATE coupon_redemptions SET state = 'released', released_why = 'void',"
                               " updated_at = now() WHERE tenant = $1 AND redemption = $2", tenant, redemption)
            await _give_back(conn, tenant, row["code"])
            metrics.RELEASES.labels("void").inc()
    return {"released": True}


async def release_expired(pool: asyncpg.Pool, limit: int) -> int:
    """Release up to `limit` holds no sale can still confirm; how many (the sweeper's step). A hold is released
    when its hub-side deadline passed AND its store has since delivered an event stamped after the hold's deadline
    on the till's clock: a store's events arrive in sequence order, so a sale that used the coupon would have
    arrived first. A store that stays offline (or whose events wait in its outbox) keeps its holds."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "UPDATE coupon_redemptions SET state = 'released', released_why = 'expired', updated_at = now()"
            " WHERE (tenant, redemption) IN (SELECT r.tenant, r.redemption FROM coupon_redemptions r"
            " JOIN store_stats st ON st.tenant = r.tenant AND st.store = r.store WHERE r.state = 'held'"
            " AND r.held_until < now() AND st.last_ts_ms > r.till_deadline_ms ORDER BY r.held_until LIMIT $1"
            " FOR UPDATE OF r SKIP LOCKED) RETURNING tenant, code", limit)
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
    if before == "used":  # a second sale (or a second coupon of one) named this use: honoured once, flagged
        await conn.execute("UPDATE coupon_redemptions SET reused = true WHERE tenant = $1 AND redemption = $2",
                           tenant, redemption)
        log.warning("a sale named coupon redemption %s a sale had used already (reused) tenant=%s store=%s "
                    "event=%s", redemption, tenant, store, sale_event)
        return "reused"
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
