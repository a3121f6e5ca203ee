"""Searching a tenant's audit log: newest first, keyset on seq, every filter in SQL on an index.

A principal sees the records of the stores their audit reach covers; records of no store (the tenant's own
matters: users, roles, the catalog) only with tenant-wide reach, except those of their own actions.
Personal values (see hub.audit.chain) are shown in place of their commitments only to tenant-wide readers
(tenant admins), and only while audit_personal keeps them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

MAX_LIMIT = 500
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Filters:
    store: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    """Records at or after this time (`from`)."""
    until: datetime | None = None
    """Records before this time (`to`)."""
    before: int | None = None
    """Records with a seq below this (the previous page's `next`)."""
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class Viewer:
    login: str
    stores: list[str] | None
    """The stores the viewer's audit reach covers; None: the whole tenant."""


def _sql(tenant: str, filters: Filters, viewer: Viewer) -> tuple[str, list[Any]]:
    args: list[Any] = [tenant]
    where = ["tenant = $1"]

    def condition(template: str, value: Any) -> None:
        args.append(value)
        where.append(template.replace("?", f"${len(args)}"))
    for column, value in (("store", filters.store), ("actor", filters.actor), ("action", filters.action)):
        if value is not None:
            condition(f"{column} = ?", value)
    if filters.since is not None:
        condition("at >= ?", filters.since)
    if filters.until is not None:
        condition("at < ?", filters.until)
    if filters.before is not None:
        condition("seq < ?", filters.before)
    if viewer.stores is not None:
        args += [viewer.stores, viewer.login]
        where.append(f"(store = ANY(${len(args) - 1}::text[]) OR (store IS NULL AND actor = ${len(args)}))")
    args.append(filters.limit + 1)
    return (f"SELECT seq, at, actor, action, store, target, details::text AS details, hash FROM audit_records"
            f" WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ${len(args)}", args)


async def search(pool: asyncpg.Pool, tenant: str, filters: Filters, viewer: Viewer) -> dict[str, Any]:
    """{"items": [...newest first], "next": the `before` of the next page, or None}."""
    sql, args = _sql(tenant, filters, viewer)
    async with pool.acquire() as conn:
        rows = await conn.fetch(sql, *args)
        more = len(rows) > filters.limit
        rows = rows[:filters.limit]
        kept: dict[int, dict[str, Any]] = {}
        if viewer.stores is None and rows:
            for row in await conn.fetch("SELECT seq, field, value::text AS value FROM audit_personal"
                                        " WHERE tenant = $1 AND seq = ANY($2::bigint[])", tenant,
                                        [row["seq"] for row in rows]):
                kept.setdefault(row["seq"], {})[row["field"]] = json.loads(row["value"])
    items = []
    for row in rows:
        details = json.loads(row["details"])
        shown = kept.get(row["seq"], {})
        items.append({"seq": row["seq"], "at": row["at"].isoformat(), "actor": row["actor"], "action": row["action"],
                      "store": row["store"], "target": row["target"], "details": {**details, **shown},
                      "personal_shown": sorted(shown), "hash": bytes(row["hash"]).hex()})
    return {"items": items, "next": rows[-1]["seq"] if more and rows else None}


async def store_exists(pool: asyncpg.Pool, tenant: str, store: str) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM stores WHERE tenant = $1 AND store = $2)",
                                    tenant, store))
