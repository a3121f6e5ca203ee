"""What the coupons read of the promotions (hub.promotions): whether a promotion takes codes (from its latest
revision's body, novapos.promotions.to_wire), and which live promotion a public code belongs to (from the
revision the stores hold)."""

from __future__ import annotations

import uuid

import asyncpg

from hub.refusals import Refused

_LATEST = ("SELECT p.name, p.state, coalesce((r.body->>'code_only')::boolean, false) AS code_only FROM promotions p"
           " JOIN promotion_revisions r ON r.tenant = p.tenant AND r.promotion = p.id AND r.revision = p.revision"
           " WHERE p.tenant = $1 AND p.id = $2")
_PUBLIC = ("SELECT p.id::text FROM promotions p JOIN promotion_revisions r ON r.tenant = p.tenant AND r.promotion = p.id"
           " AND r.revision = coalesce(p.live_revision, p.revision) WHERE p.tenant = $1 AND p.state = 'live'"
           " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(coalesce(r.body->'public_codes', '[]'::jsonb)) c"
           " WHERE upper(replace(c, ' ', '')) = $2) ORDER BY p.id LIMIT 1")


async def check_takes_codes(conn: asyncpg.Connection, tenant: str, promotion: uuid.UUID) -> None:
    """Refused (404) unless `promotion` is the tenant's, (409) unless it is code_only and not ended."""
    row = await conn.fetchrow(_LATEST, tenant, promotion)
    if row is None:
        raise Refused(404, f"there is no promotion {promotion}")
    if not row["code_only"]:
        raise Refused(409, f"promotion {row['name']!r} applies without a code: make it code_only to give it codes")
    if row["state"] == "ended":
        raise Refused(409, f"promotion {row['name']!r} has ended: its codes would give nothing")


async def public_code(conn: asyncpg.Connection, tenant: str, code: str) -> str | None:
    """The live promotion whose public codes hold `code` (normalised), or None."""
    found: str | None = await conn.fetchval(_PUBLIC, tenant, code)
    return found


async def takes_codes(conn: asyncpg.Connection, tenant: str, promotion: uuid.UUID) -> bool:
    """Whether a code of `promotion` may be reserved now: the promotion has not ended (an ended promotion's code
    would give nothing, and a hold would count a use of nothing)."""
    return bool(await conn.fetchval("SELECT state <> 'ended' FROM promotions WHERE tenant = $1 AND id = $2",
                                    tenant, promotion))
