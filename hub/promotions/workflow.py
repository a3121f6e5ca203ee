"""The changes a person makes to a promotion, each one transaction that locks the promotion's head, checks the
state allows it, writes, and appends its audit record (hub.audit.chain), so a change and its record commit
together or not at all.

    create      a draft, revision 1
    edit        a new revision (draft again; a live revision stays what the stores hold until the new one goes live)
    schedule    a new revision with other starts/ends; on a live promotion only narrowing (a later start, an
                earlier end) goes live at once: widening it changes its cost, so it is an edit to submit again
    submit      with the simulation of the revision (hub.promotions.simulation): live at once when its cost is
                within the tenant's threshold, else pending a second person's approval
    approve     by someone else with MANAGE_PROMOTIONS (never the revision's author nor its submitter): live
    reject      back to draft, with a reason
    end         ended: the stores are sent it inactive

Going live (and ending) bumps the tenant's catalog version (hub.catalog.service.bump, which the catalog's own
changes use too), stamps the promotion with it and records the live period (promotion_live), so the catalog
publisher sends it to the stores and replay validation knows which catalog versions held which revision.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record
from hub.catalog.service import bump
from hub.promotions import records
from hub.promotions.records import NotFound
from hub.promotions.settings import settings
from novapos import promotions as engine
from novapos.validators import Invalid

Check = Callable[[tuple[str, ...], tuple[str, ...]], None]
"""The caller's authorization of a change, given a scope (regions, stores; both empty: the whole tenant): raises
when the person may not change a promotion there. Asked of the promotion's scope as it is, and as the change would
make it."""

EDITABLE = ("draft", "live")


class Conflict(Exception):
    """The promotion's state does not allow the change; the message says what would."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


def parse(body: dict[str, Any], *, promotion: uuid.UUID, revision: int, currency: str, timezone: str) \
        -> engine.Promotion:
    """A request's promotion: its fields as the engine's wire form has them, with the id, version (the revision),
    currency and time zone the hub's; validated by the engine (Invalid names the field)."""
    if not isinstance(body, dict):
        raise Invalid("promotion", "must be an object")
    return engine.from_wire({**body, "id": str(promotion), "version": revision, "currency": currency,
                             "timezone": timezone})


async def _check_scopes(conn: asyncpg.Connection, tenant: str, head: records.Head, check: Check) -> None:
    """`check` over the promotion's scope as its latest revision has it and as the stores hold it (a live
    revision with a draft edit may have another scope: a change reaching the stores must be within both)."""
    check(head.regions, head.stores)
    if head.live_revision is not None and head.live_revision != head.revision and head.state != "ended":
        held = records.promotion_of(await records.revision_body(conn, tenant, head.id, head.live_revision))
        check(tuple(sorted(held.regions)), tuple(sorted(held.stores)))


def _wire(promotion: engine.Promotion) -> str:
    return json.dumps(engine.to_wire(promotion), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def _tenant(conn: asyncpg.Connection, tenant: str) -> tuple[str, str]:
    currency = await conn.fetchval("SELECT currency FROM tenants WHERE tenant = $1", tenant)
    if currency is None:
        raise NotFound(f"there is no tenant {tenant}")
    return currency.strip(), (await settings(conn, tenant)).timezone


async def _write_revision(conn: asyncpg.Connection, tenant: str, promotion: engine.Promotion, actor: str,
                          state: str) -> None:
    await conn.execute("INSERT INTO promotion_revisions (tenant, promotion, revision, body, author)"
                       " VALUES ($1, $2, $3, $4::jsonb, $5)", tenant, uuid.UUID(promotion.id), promotion.version,
                       _wire(promotion), actor)
    await conn.execute(
        "UPDATE promotions SET name = $3, revision = $4, regions = $5, stores = $6, state = $7, updated_at = now(),"
        " submitted_by = NULL, submitted_at = NULL WHERE tenant = $1 AND id = $2",
        tenant, uuid.UUID(promotion.id), promotion.name, promotion.version, sorted(promotion.regions),
        sorted(promotion.stores), state)


async def create(pool: asyncpg.Pool, tenant: str, body: dict[str, Any], actor: str, check: Check,
                 promotion_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A draft, revision 1 (its id made here unless given: the demo's are fixed)."""
    promotion_id = promotion_id or uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        currency, timezone = await _tenant(conn, tenant)
        promotion = parse(body, promotion=promotion_id, revision=1, currency=currency, timezone=timezone)
        check(tuple(sorted(promotion.regions)), tuple(sorted(promotion.stores)))
        await conn.execute("INSERT INTO promotions (tenant, id, name, state, revision, created_by)"
                           " VALUES ($1, $2, $3, 'draft', 1, $4)", tenant, promotion_id, promotion.name, actor)
        await _write_revision(conn, tenant, promotion, actor, "draft")
        await record(conn, Entry(tenant, actor, "promotion.created", target=str(promotion_id), details={
            "name": promotion.name, "revision": 1, "kind": promotion.kind}))
        return await records.detail(conn, tenant, promotion_id)


async def edit(pool: asyncpg.Pool, tenant: str, promotion_id: uuid.UUID, body: dict[str, Any], actor: str,
               check: Check) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        head = await records.head(conn, tenant, promotion_id, lock=True)
        if head.state not in EDITABLE:
            raise Conflict(f"a {head.state} promotion cannot be edited"
                           + (": wait for the decision, or reject it first" if head.state == "pending" else ""),
                           head.state)
        currency, timezone = await _tenant(conn, tenant)
        promotion = parse(body, promotion=promotion_id, revision=head.revision + 1, currency=currency,
                          timezone=timezone)
        check(head.regions, head.stores)
        check(tuple(sorted(promotion.regions)), tuple(sorted(promotion.stores)))
        await _write_revision(conn, tenant, promotion, actor, "draft")
        await record(conn, Entry(tenant, actor, "promotion.edited", target=str(promotion_id), details={
            "name": promotion.name, "revision": promotion.version, "was": head.state}))
        return await records.detail(conn, tenant, promotion_id)


def _narrows(old: engine.Promotion, new: engine.Promotion) -> bool:
    """Whether new's schedule lies within old's (None: unbounded)."""
    starts_ok = old.starts_at_ms is None or (new.starts_at_ms is not None and new.starts_at_ms >= old.starts_at_ms)
    ends_ok = old.ends_at_ms is None or (new.ends_at_ms is not None and new.ends_at_ms <= old.ends_at_ms)
    return starts_ok and ends_ok


async def schedule(pool: asyncpg.Pool, tenant: str, promotion_id: uuid.UUID, starts_at_ms: int | None,
                   ends_at_ms: int | None, actor: str, check: Check) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        head = await records.head(conn, tenant, promotion_id, lock=True)
        if head.state not in EDITABLE:
            raise Conflict(f"a {head.state} promotion cannot be scheduled", head.state)
        latest = records.promotion_of(await records.revision_body(conn, tenant, promotion_id, head.revision))
        check(head.regions, head.stores)
        wire = {**engine.to_wire(latest), "starts_at_ms": starts_at_ms, "ends_at_ms": ends_at_ms}
        currency, timezone = await _tenant(conn, tenant)
        promotion = parse(wire, promotion=promotion_id, revision=head.revision + 1, currency=currency,
                          timezone=timezone)
        live = head.state == "live"
        if live and not _narrows(latest, promotion):
            raise Conflict("a live promotion's schedule can only be narrowed (a later start, an earlier end) at once: "
                           "a wider one changes what it costs, so edit it and submit it again", head.state)
        await _write_revision(conn, tenant, promotion, actor, "live" if live else "draft")
        version = await _go_live(conn, tenant, promotion_id, promotion.version) if live else None
        await record(conn, Entry(tenant, actor, "promotion.scheduled", target=str(promotion_id), details={
            "revision": promotion.version, "starts_at_ms": starts_at_ms, "ends_at_ms": ends_at_ms, "live": live,
            "catalog_version": version}))
        return await records.detail(conn, tenant, promotion_id)


async def _go_live(conn: asyncpg.Connection, tenant: str, promotion_id: uuid.UUID, revision: int) -> int:
    """Make `revision` what the stores hold: a new catalog version, the live periods closed and opened."""
    version = await bump(conn, tenant)
    await _close_period(conn, tenant, promotion_id, version)
    await conn.execute("INSERT INTO promotion_live (tenant, promotion, revision, live_from, from_version)"
                       " VALUES ($1, $2, $3, now(), $4)", tenant, promotion_id, revision, version)
    await conn.execute("UPDATE promotions SET state = 'live', live_revision = $3, version = $4, submitted_by = NULL,"
                       " submitted_at = NULL, updated_at = now() WHERE tenant = $1 AND id = $2",
                       tenant, promotion_id, revision, version)
    return version


async def _close_period(conn: asyncpg.Connection, tenant: str, promotion_id: uuid.UUID, version: int) -> None:
    await conn.execute("UPDATE promotion_live SET live_until = now(), until_version = $3 WHERE tenant = $1"
                       " AND promotion = $2 AND live_until IS NULL", tenant, promotion_id, version)


async def submit(pool: asyncpg.Pool, tenant: str, promotion_id: uuid.UUID, simulation: int, actor: str,
                 check: Check) -> dict[str, Any]:
    """Submit the latest revision with its simulation (the id of a promotion_simulations row of that revision)."""
    async with pool.acquire() as conn, conn.transaction():
        head = await records.head(conn, tenant, promotion_id, lock=True)
        if head.state != "draft":
            raise Conflict(f"only a draft can be submitted; this promotion is {head.state}", head.state)
        await _check_scopes(conn, tenant, head, check)
        simulated = await conn.fetchrow("SELECT revision, cost_minor, threshold_minor, needs_approval"
                                        " FROM promotion_simulations WHERE id = $1 AND tenant = $2 AND promotion = $3",
                                        simulation, tenant, promotion_id)
        if simulated is None or simulated["revision"] != head.revision:
            raise Conflict("the promotion changed since it was simulated: simulate it again", head.state)
        details: dict[str, Any] = {"revision": head.revision, "cost_minor": simulated["cost_minor"],
                                   "threshold_minor": simulated["threshold_minor"], "simulation": simulation}
        if simulated["needs_approval"]:
            await conn.execute("UPDATE promotions SET state = 'pending', submitted_by = $3, submitted_at = now(),"
                               " updated_at = now() WHERE tenant = $1 AND id = $2", tenant, promotion_id, actor)
            await record(conn, Entry(tenant, actor, "promotion.submitted", target=str(promotion_id),
                                     details={**details, "needs_approval": True}))
        else:
            version = await _go_live(conn, tenant, promotion_id, head.revision)
            await record(conn, Entry(tenant, actor, "promotion.submitted", target=str(promotion_id),
                                     details={**details, "needs_approval": False, "catalog_version": version}))
        return await records.detail(conn, tenant, promotion_id)


async def decide(pool: asyncpg.Pool, tenant: str, promotion_id: uuid.UUID, approve: bool, reason: str | None,
                 actor: str, check: Check, revision: int | None = None) -> dict[str, Any]:
    """Approve (live) or reject (back to draft) a pending promotion. Approval is a second person's: never an
    author of a revision since the live one nor its submitter (a rejection may be anyone's, the submitter withdrawing it too), and of
    the `revision` the approver saw (required to approve: a promotion rejected, edited and submitted again
    meanwhile is another revision, refused)."""
    async with pool.acquire() as conn, conn.transaction():
        head = await records.head(conn, tenant, promotion_id, lock=True)
        if head.state != "pending":
            raise Conflict(f"only a pending promotion can be approved or rejected; this one is {head.state}",
                           head.state)
        if approve and revision != head.revision:
            raise Conflict(f"the promotion changed since you saw it: revision {head.revision} is pending now, not "
                           f"{revision}; look at it again before approving", head.state)
        await _check_scopes(conn, tenant, head, check)
        author = await conn.fetchval("SELECT author FROM promotion_revisions WHERE tenant = $1 AND promotion = $2"
                                     " AND revision = $3", tenant, promotion_id, head.revision)
        # Everyone who wrote what is pending: each revision since the live one (all of them if none went live), so
        # that a colleague's small edit (a schedule) does not make the author of the terms their approver.
        authors = {row["author"] for row in await conn.fetch(
            "SELECT author FROM promotion_revisions WHERE tenant = $1 AND promotion = $2 AND revision > $3",
            tenant, promotion_id, head.live_revision or 0)}
        if approve and (actor in authors or actor == head.submitted_by):
            raise Conflict(f"{actor} wrote or submitted this revision: a second person with promotions.manage "
                           "must approve it", head.state)
        simulation = await conn.fetchrow(
            "SELECT id, cost_minor, threshold_minor FROM promotion_simulations WHERE tenant = $1 AND promotion = $2"
            " AND revision = $3 ORDER BY id DESC LIMIT 1", tenant, promotion_id, head.revision)
        await conn.execute("INSERT INTO promotion_decisions (tenant, promotion, revision, decision, by_login, reason,"
                           " simulation) VALUES ($1, $2, $3, $4, $5, $6, $7)", tenant, promotion_id, head.revision,
                           "approved" if approve else "rejected", actor, reason,
                           None if simulation is None else simulation["id"])
        details: dict[str, Any] = {
            "revision": head.revision, "author": author, "submitted_by": head.submitted_by, "reason": reason,
            "cost_minor": None if simulation is None else simulation["cost_minor"],
            "threshold_minor": None if simulation is None else simulation["threshold_minor"]}
        if approve:
            details["catalog_version"] = await _go_live(conn, tenant, promotion_id, head.revision)
        else:
            await conn.execute("UPDATE promotions SET state = 'draft', submitted_by = NULL, submitted_at = NULL,"
                               " updated_at = now() WHERE tenant = $1 AND id = $2", tenant, promotion_id)
        await record(conn, Entry(tenant, actor, "promotion.approved" if approve else "promotion.rejected",
                                 target=str(promotion_id), details=details))
        return await records.detail(conn, tenant, promotion_id)


async def end(pool: asyncpg.Pool, tenant: str, promotion_id: uuid.UUID, reason: str | None, actor: str,
              check: Check) -> dict[str, Any]:
    """End a promotion the stores hold (live, or a draft of a live one): the stores are sent it inactive."""
    async with pool.acquire() as conn, conn.transaction():
        head = await records.head(conn, tenant, promotion_id, lock=True)
        if head.live_revision is None or head.state == "ended":
            raise Conflict("only a promotion the stores hold can be ended"
                           + ("" if head.state == "ended" else ": this one never went live; leave the draft as is"),
                           head.state)
        await _check_scopes(conn, tenant, head, check)
        version = await bump(conn, tenant)
        await _close_period(conn, tenant, promotion_id, version)
        await conn.execute("UPDATE promotions SET state = 'ended', version = $3, submitted_by = NULL,"
                           " submitted_at = NULL, updated_at = now() WHERE tenant = $1 AND id = $2",
                           tenant, promotion_id, version)
        await record(conn, Entry(tenant, actor, "promotion.ended", target=str(promotion_id), details={
            "revision": head.live_revision, "reason": reason, "catalog_version": version}))
        return await records.detail(conn, tenant, promotion_id)
