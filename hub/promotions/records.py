"""Reading promotions: a promotion's head with its latest and live revisions, its revisions, and the sets of
revisions that were in force, by catalog version (what a store's copy held: replay validation) or by time (what
was live during a period: the simulation).

Revisions are immutable (a trigger refuses UPDATE and DELETE), so what a revision said, and which revisions a
catalog version held, never change once written: both are safe to cache for ever (`at_version` does, for the
versions the tenant's catalog has reached).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from novapos import promotions as engine


class NotFound(LookupError):
    """No such promotion in the tenant (another tenant's is not found either)."""


HEAD_SQL = ("SELECT id, name, state, revision, live_revision, regions, stores, submitted_by, submitted_at, created_by,"
            " created_at, updated_at, version FROM promotions WHERE tenant = $1 AND id = $2")


@dataclass(frozen=True)
class Head:
    id: uuid.UUID
    name: str
    state: str
    revision: int
    live_revision: int | None
    regions: tuple[str, ...]
    stores: tuple[str, ...]
    submitted_by: str | None
    created_by: str

    @classmethod
    def of(cls, row: asyncpg.Record) -> Head:
        return cls(row["id"], row["name"], row["state"], row["revision"], row["live_revision"],
                   tuple(row["regions"]), tuple(row["stores"]), row["submitted_by"], row["created_by"])


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def head_json(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "state": row["state"], "revision": row["revision"],
            "live_revision": row["live_revision"], "regions": list(row["regions"]), "stores": list(row["stores"]),
            "submitted_by": row["submitted_by"], "submitted_at": _stamp(row["submitted_at"]),
            "created_by": row["created_by"], "created_at": _stamp(row["created_at"]),
            "updated_at": _stamp(row["updated_at"]), "catalog_version": row["version"]}


def promotion_of(body: str | dict[str, Any]) -> engine.Promotion:
    """A stored revision's body as the engine's Promotion (it was validated by from_wire when written)."""
    return engine.from_wire(json.loads(body) if isinstance(body, str) else body)


async def head(conn: asyncpg.Connection, tenant: str, promotion: uuid.UUID, *, lock: bool = False) -> Head:
    row = await conn.fetchrow(HEAD_SQL + (" FOR UPDATE" if lock else ""), tenant, promotion)
    if row is None:
        raise NotFound(f"there is no promotion {promotion}")
    return Head.of(row)


async def revision_body(conn: asyncpg.Connection, tenant: str, promotion: uuid.UUID, revision: int) -> dict[str, Any]:
    body = await conn.fetchval("SELECT body FROM promotion_revisions WHERE tenant = $1 AND promotion = $2"
                               " AND revision = $3", tenant, promotion, revision)
    if body is None:
        raise NotFound(f"promotion {promotion} has no revision {revision}")
    return dict(json.loads(body))


async def detail(conn: asyncpg.Connection, tenant: str, promotion: uuid.UUID) -> dict[str, Any]:
    """The promotion as the console shows it: its head, its latest revision's body, the live one's when it differs,
    its latest simulation of the latest revision, and its decisions."""
    row = await conn.fetchrow(HEAD_SQL, tenant, promotion)
    if row is None:
        raise NotFound(f"there is no promotion {promotion}")
    answer = head_json(row)
    answer["promotion"] = await revision_body(conn, tenant, promotion, row["revision"])
    answer["live"] = None if row["live_revision"] in (None, row["revision"]) else \
        await revision_body(conn, tenant, promotion, row["live_revision"])
    simulation = await conn.fetchrow(
        "SELECT * FROM promotion_simulations WHERE tenant = $1 AND promotion = $2 AND revision = $3"
        " ORDER BY id DESC LIMIT 1", tenant, promotion, row["revision"])
    answer["simulation"] = None if simulation is None else simulation_json(simulation)
    answer["decisions"] = [
        {"revision": d["revision"], "decision": d["decision"], "by": d["by_login"], "reason": d["reason"],
         "at": _stamp(d["at"])}
        for d in await conn.fetch("SELECT revision, decision, by_login, reason, at FROM promotion_decisions"
                                  " WHERE tenant = $1 AND promotion = $2 ORDER BY id", tenant, promotion)]
    return answer


def simulation_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id"], "revision": row["revision"], "days": row["days"], "since": _stamp(row["since"]),
            "until": _stamp(row["until"]), "sales": row["sales"], "sales_touched": row["sales_touched"],
            "cost_minor": row["cost_minor"], "per_store": json.loads(row["per_store"]),
            "threshold_minor": row["threshold_minor"], "needs_approval": row["needs_approval"],
            "by": row["by_login"], "at": _stamp(row["at"])}


async def revisions(conn: asyncpg.Connection, tenant: str, promotion: uuid.UUID) -> list[dict[str, Any]]:
    """Every revision, oldest first, with the periods it was live."""
    await head(conn, tenant, promotion)
    live: dict[int, list[dict[str, Any]]] = {}
    for period in await conn.fetch(
            "SELECT revision, live_from, from_version, live_until, until_version FROM promotion_live"
            " WHERE tenant = $1 AND promotion = $2 ORDER BY from_version", tenant, promotion):
        live.setdefault(period["revision"], []).append({
            "from": _stamp(period["live_from"]), "from_version": period["from_version"],
            "until": _stamp(period["live_until"]), "until_version": period["until_version"]})
    return [{"revision": row["revision"], "author": row["author"], "created_at": _stamp(row["created_at"]),
             "promotion": json.loads(row["body"]), "live": live.get(row["revision"], [])}
            for row in await conn.fetch("SELECT revision, author, created_at, body FROM promotion_revisions"
                                        " WHERE tenant = $1 AND promotion = $2 ORDER BY revision", tenant, promotion)]


AT_VERSION_SQL = (
    "SELECT r.promotion, r.revision, r.body FROM promotion_live l JOIN promotion_revisions r USING"
    " (tenant, promotion, revision) WHERE l.tenant = $1 AND l.from_version <= $2"
    " AND (l.until_version IS NULL OR l.until_version > $2) ORDER BY r.promotion")

_at_version: dict[tuple[str, str, int], engine.Rules] = {}
MAX_CACHED_VERSIONS = 4096


async def at_version(conn: asyncpg.Connection, tenant: str, version: int, current: int) -> engine.Rules:
    """The revisions a store's copy held at catalog version `version` (the tenant's catalog being at `current`), as
    the engine's Rules (built once per version). Cached per (database, tenant, version) once `version` <=
    `current`: a past version's set never changes."""
    database = await conn.fetchval("SELECT current_database()") if version <= current else None
    key = (str(database), tenant, version)
    if database is not None and key in _at_version:
        return _at_version[key]
    found = engine.Rules(promotion_of(row["body"]) for row in await conn.fetch(AT_VERSION_SQL, tenant, version))
    if database is not None:
        if len(_at_version) >= MAX_CACHED_VERSIONS:
            _at_version.clear()
        _at_version[key] = found
    return found


_revisions_rules: dict[tuple[str, str, tuple[tuple[uuid.UUID, int], ...]], engine.Rules] = {}


async def revisions_rules(conn: asyncpg.Connection, tenant: str,
                          revisions: Sequence[tuple[uuid.UUID, int]]) -> engine.Rules:
    """These (promotion, revision)s as the engine's Rules, built once per set (revisions are immutable, so a
    set's Rules never change: cached per database, tenant and set)."""
    key = (str(await conn.fetchval("SELECT current_database()")), tenant, tuple(sorted(revisions)))
    found = _revisions_rules.get(key)
    if found is None:
        rows = await conn.fetch("SELECT r.body FROM unnest($2::uuid[], $3::int[]) AS w(promotion, revision)"
                                " JOIN promotion_revisions r ON (r.tenant, r.promotion, r.revision) ="
                                " ($1, w.promotion, w.revision)", tenant, [p for p, _ in key[2]], [r for _, r in key[2]])
        found = engine.Rules(promotion_of(row["body"]) for row in rows)
        if len(_revisions_rules) >= MAX_CACHED_VERSIONS:
            _revisions_rules.clear()
        _revisions_rules[key] = found
    return found


@dataclass(frozen=True)
class Period:
    """A revision and the time it was live (until None: still)."""
    promotion: engine.Promotion
    live_from_ms: int
    live_until_ms: int | None


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


async def live_during(conn: asyncpg.Connection, tenant: str, since: datetime, until: datetime,
                      leave_out: uuid.UUID | None = None) -> list[Period]:
    """Every revision that was live at some time in [since, until), with when (a promotion left out: the one being
    simulated, whose earlier live revisions must not count twice)."""
    rows: Sequence[asyncpg.Record] = await conn.fetch(
        "SELECT r.body, l.live_from, l.live_until FROM promotion_live l JOIN promotion_revisions r USING"
        " (tenant, promotion, revision) WHERE l.tenant = $1 AND l.live_from < $3"
        " AND (l.live_until IS NULL OR l.live_until > $2) AND ($4::uuid IS NULL OR l.promotion <> $4)"
        " ORDER BY l.promotion, l.from_version", tenant, since, until, leave_out)
    return [Period(promotion_of(row["body"]), _ms(row["live_from"]),
                   None if row["live_until"] is None else _ms(row["live_until"])) for row in rows]
