"""Each store's staff list (novapos.wire.staff) at the hub: built from the users table, answered to a store
that asks, and published to the stores a change affects. (asyncio side: asyncpg and the NATS client)

The list is read in one statement (one snapshot) with the tenant's staff version, which every change bumps
in its own transaction: a list can never carry a newer version than the data it holds, so the store's
"keep only a newer version" never drops the list that reflects a change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import asyncpg

from novapos.adapters.nats import NatsLink
from novapos.wire.staff import (
    MAX_STAFF,
    StaffList,
    StaffMember,
    encode_list,
    parse_staff_request_subject,
    staff_subject,
)

log = logging.getLogger(__name__)

LIST_SQL = f"""
WITH v AS (SELECT coalesce((SELECT version FROM staff_versions WHERE tenant = $1), 0) AS version),
people AS (
    SELECT u.login, u.name, u.pin_verifier, array_agg(r.role ORDER BY r.role) AS roles
    FROM user_roles r JOIN users u ON u.id = r.user_id
    WHERE r.tenant = $1 AND r.store = $2 AND u.active AND u.pin_verifier IS NOT NULL
    GROUP BY u.id ORDER BY u.login LIMIT {MAX_STAFF})
SELECT v.version, p.login, p.name, p.pin_verifier, p.roles FROM v LEFT JOIN people p ON true ORDER BY p.login
"""


async def bump_version(conn: asyncpg.Connection, tenant: str) -> int:
    """Inside the changing transaction: the tenant's staff lists have changed (every store's version moves)."""
    return int(await conn.fetchval(
        "INSERT INTO staff_versions (tenant, version) VALUES ($1, 1) ON CONFLICT (tenant)"
        " DO UPDATE SET version = staff_versions.version + 1 RETURNING version", tenant))


async def stores_of(conn: asyncpg.Connection, user_id: int) -> set[str]:
    """The stores whose lists a user appears in (or would, with a PIN): where they hold a store role."""
    return {row["store"] for row in await conn.fetch(
        "SELECT DISTINCT store FROM user_roles WHERE user_id = $1 AND store IS NOT NULL", user_id)}


async def staff_list(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, store: str) -> StaffList:
    rows = await conn.fetch(LIST_SQL, tenant, store)
    return StaffList(tenant, store, rows[0]["version"], tuple(
        StaffMember(row["login"], row["name"], tuple(row["roles"]), row["pin_verifier"])
        for row in rows if row["login"] is not None))


async def answer_staff(pool: asyncpg.Pool, subject: str, _data: bytes) -> bytes:
    """Responder of novapos.*.*.req.staff: the asking store's list (the subject says which store asks)."""
    tenant, store = parse_staff_request_subject(subject)
    return encode_list(await staff_list(pool, tenant, store))


async def publish_lists(link: NatsLink, pool: asyncpg.Pool, tenant: str, stores: Iterable[str]) -> None:
    """After a committed change: each affected store's new list on its staff subject (core NATS). A store
    offline now asks for its list when it is back, so a failure here is logged, never raised; with the hub's
    own link down nothing is sent (the stores ask again when their links come back)."""
    if not link.connected:
        log.warning("the hub is not connected to NATS: the staff lists of %s/%s go out when the stores ask again "
                    "(on their reconnect, or within their staff_refresh_s)", tenant, ", ".join(sorted(set(stores))))
        return
    for store in sorted(set(stores)):
        try:
            staff = await staff_list(pool, tenant, store)
            await link.client.publish(staff_subject(tenant, store), encode_list(staff))
        except Exception as exc:  # NATS away or PostgreSQL gone: the store's own refresh catches up
            log.warning("could not publish the staff list of %s/%s (%s: %s); the store fetches it at its next "
                        "refresh", tenant, store, type(exc).__name__, exc)
            continue
        log.info("published the staff list of %s/%s, version %d, %d people", tenant, store, staff.version,
                 len(staff.users))
    try:
        await link.client.flush(timeout=2)
    except Exception as exc:
        log.warning("flushing staff lists to NATS failed (%s); stores fetch them at their next refresh", exc)
