"""Managing users: who may see and change whom, and the changes themselves, each audited in its transaction.

The rules (checked again inside the changing transaction, on the locked user row):
- a grant must be a role GRANTABLE by one of the actor's MANAGE_USERS roles, at a region or store that
  role's scope covers (a regional admin grants store roles at their region's stores, a tenant admin anything);
- a user may be changed only by someone who could grant every role that user holds: a regional admin
  changes only users whose roles all lie at their region's stores (never a tenant admin, never another
  regional admin, never a user of another region); a user with no role left is the tenant admins' alone;
- a user may change their own name, password and PIN, and never deactivate themselves or revoke their own
  last role that manages users;
- a login of another tenant is not found (404); one of the same tenant out of reach is refused (403).
Every change bumps the tenant's staff version (hub.identity.staff) and says which stores' lists it touched,
so the caller publishes them after the commit. (asyncio side: asyncpg)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hub.audit.chain import Entry, record
from hub.identity.principal import Assignment, Principal
from hub.identity.sessions import close_sessions_of
from hub.identity.staff import bump_version, stores_of
from hub.identity.users import Grant, create_user
from novapos import validators
from novapos.adapters.http import ApiError
from novapos.roles import GRANTABLE, PERMISSIONS, Permission, Role

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
PIN_DIGITS = (4, 8)
MAX_ROLES = 50
_DIGITS = re.compile(r"[0-9]+")


def password(where: str, value: object) -> str:
    """A console password: 10..256 characters, no control characters (spaces at either end are kept)."""
    text = validators.text(where, value, max_length=MAX_PASSWORD_LENGTH, strip=False)
    if not text.strip():
        raise validators.Invalid(where, "must not be only spaces")
    if len(text) < MIN_PASSWORD_LENGTH:
        raise validators.Invalid(where, f"must be at least {MIN_PASSWORD_LENGTH} characters, got {len(text)}")
    return text


def pin(where: str, value: object) -> str:
    """A till PIN: 4..8 digits, and not one a thief tries first (one digit repeated, a run up or down)."""
    low, high = PIN_DIGITS
    if not isinstance(value, str) or not _DIGITS.fullmatch(value) or not low <= len(value) <= high:
        raise validators.Invalid(where, f"must be {low} to {high} digits (as text), got {validators.describe(value)}")
    steps = {(int(b) - int(a)) % 10 for a, b in zip(value, value[1:], strict=False)}
    if steps in ({0}, {1}, {9}):
        raise validators.Invalid(where, "is too easy to guess (one digit repeated, or a run like 1234 or 9876): "
                                        "choose another")
    return value


def describe_grant(grant: Grant) -> dict[str, str | None]:
    return {"role": grant.role.value, "region": grant.region, "store": grant.store}


def can_grant(principal: Principal, grant: Grant) -> bool:
    """Whether one of the actor's roles may assign `grant` (GRANTABLE, within that role's scope)."""
    for held in principal.assignments:
        if Permission.MANAGE_USERS not in PERMISSIONS[held.role] or grant.role not in GRANTABLE.get(held.role, ()):
            continue
        if held.region is None and held.store is None:
            return True
        if held.region is not None and (grant.region == held.region or (
                grant.store is not None and grant.store in principal.region_stores.get(held.region, ()))):
            return True
        if held.store is not None and grant.store == held.store:
            return True
    return False


@dataclass(frozen=True)
class Target:
    """A user as a manager sees them."""
    id: int
    login: str
    name: str
    active: bool
    locked: bool
    console: bool
    till: bool
    assignments: tuple[Assignment, ...]

    def as_json(self, principal: Principal) -> dict[str, Any]:
        """Their roles within what the viewer may see (a tenant admin sees all; others, how many more there are)."""
        reach = principal.reach(Permission.VIEW_USERS)
        shown = [a for a in self.assignments if reach.tenant_wide or (a.store is not None and a.store in reach.stores)
                 or (a.region is not None and a.region in reach.regions)]
        return {"login": self.login, "name": self.name, "active": self.active, "locked": self.locked,
                "console": self.console, "till": self.till,
                "roles": [{"role": a.role.value, "region": a.region, "store": a.store} for a in shown],
                "roles_elsewhere": len(self.assignments) - len(shown)}


_USER_COLUMNS = (
    "u.id, u.tenant, u.login, u.name, u.active, coalesce(u.locked_until > now(), false) AS locked,"
    " u.password_hash IS NOT NULL AS console, u.pin_verifier IS NOT NULL AS till,"
    " coalesce((SELECT json_agg(json_build_object('role', r.role, 'region', r.region, 'store', r.store)"
    "           ORDER BY r.role, r.region, r.store) FROM user_roles r WHERE r.user_id = u.id), '[]') AS roles")
LIST_SQL = (
    f"SELECT {_USER_COLUMNS} FROM users u"
    " WHERE u.tenant = $1 AND ($2::text IS NULL OR u.login > $2)"
    "  AND ($3::text IS NULL OR u.login LIKE lower($3) || '%' OR u.name ILIKE '%' || $3 || '%')"
    "  AND ($4::text[] IS NULL OR EXISTS (SELECT FROM user_roles r WHERE r.user_id = u.id"
    "       AND (r.store = ANY($4) OR r.region = ANY($5))))"
    "  AND ($6::text IS NULL OR EXISTS (SELECT FROM user_roles r WHERE r.user_id = u.id AND r.store = $6))"
    " ORDER BY u.login LIMIT $7")


def _target(row: asyncpg.Record) -> Target:
    return Target(row["id"], row["login"], row["name"], row["active"], row["locked"], row["console"], row["till"],
                  tuple(Assignment(Role(r["role"]), r["region"], r["store"]) for r in json.loads(row["roles"])))


def _visible(principal: Principal, target: Target) -> bool:
    reach = principal.reach(Permission.VIEW_USERS)
    return target.id == principal.user_id or reach.tenant_wide or any(
        (a.store is not None and a.store in reach.stores) or (a.region is not None and a.region in reach.regions)
        for a in target.assignments)


def _manageable(principal: Principal, target: Target) -> bool:
    if not target.assignments:
        return principal.reach(Permission.MANAGE_USERS).tenant_wide
    return all(can_grant(principal, Grant(a.role, a.region, a.store)) for a in target.assignments)


async def read(conn: asyncpg.Connection | asyncpg.Pool, login: str, lock: bool = False) -> tuple[str, Target] | None:
    """(tenant, user) of `login`, unchecked: for find, and for the answer after a change."""
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users u WHERE u.login = $1"
                              + (" FOR UPDATE OF u" if lock else ""), login)
    return None if row is None else (row["tenant"], _target(row))


async def find(conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, login: str, *,
               manage: bool = False, lock: bool = False) -> Target:
    """The user `login` if the principal may see it (or, `manage`, change it); else 404 or 403."""
    found = await read(conn, login, lock)
    if found is None or found[0] != principal.tenant:
        raise ApiError(404, f"there is no user {login!r}")
    target = found[1]
    if not _visible(principal, target):
        raise ApiError(403, principal.refusal(Permission.VIEW_USERS, f"user {login}"))
    if manage and not _manageable(principal, target):
        raise ApiError(403, f"{principal.login} may not change {login}: that needs someone who could grant every role "
                            f"{login} holds (a regional admin manages store roles at their region's stores)")
    return target


async def listing(pool: asyncpg.Pool, principal: Principal, *, q: str | None, store: str | None,
                  after: str | None, limit: int) -> dict[str, Any]:
    """One keyset page of the users the principal may see, by login: {"items": [...], "next": login or null}."""
    reach = principal.require(Permission.VIEW_USERS)
    if store is not None:
        await check_place(pool, principal.tenant, store=store)
        principal.require(Permission.VIEW_USERS, store=store)
    stores = None if reach.tenant_wide else sorted(reach.stores)
    regions = None if reach.tenant_wide else sorted(reach.regions)
    pattern = None if q is None else q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = await pool.fetch(LIST_SQL, principal.tenant, after, pattern, stores, regions, store, limit + 1)
    items = [_target(row).as_json(principal) for row in rows[:limit]]
    return {"items": items, "next": items[-1]["login"] if len(rows) > limit else None}


async def check_place(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, *, store: str | None = None,
                      region: str | None = None) -> None:
    """404 for a store or region the tenant does not have (another tenant's included)."""
    if store is not None and not await conn.fetchval(
            "SELECT EXISTS (SELECT FROM stores WHERE tenant = $1 AND store = $2)", tenant, store):
        raise ApiError(404, f"there is no store {store!r}")
    if region is not None and not await conn.fetchval(
            "SELECT EXISTS (SELECT FROM regions WHERE tenant = $1 AND region = $2)", tenant, region):
        raise ApiError(404, f"there is no region {region!r}")


def check_grant(principal: Principal, grant: Grant) -> None:
    if not can_grant(principal, grant):
        where = f" of region {grant.region}" if grant.region else f" at store {grant.store}" if grant.store else ""
        raise ApiError(403, f"{principal.login} may not grant {grant.role.value}{where}: that needs a tenant admin "
                            "(any role) or a regional admin (store roles at their own region's stores)")


async def _after(conn: asyncpg.Connection, login: str) -> Target:
    found = await read(conn, login)
    assert found is not None  # changed in this very transaction
    return found[1]


@dataclass
class Done:
    """What a change did: the user after it, and the stores whose staff lists it touched."""
    target: Target
    stores: set[str] = field(default_factory=set)


async def check_grants(conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, grants: list[Grant]) -> None:
    """404 for a place the tenant lacks, then 403 for a grant the principal may not make."""
    for grant in grants:
        await check_place(conn, principal.tenant, store=grant.store, region=grant.region)
        check_grant(principal, grant)


async def create(pool: asyncpg.Pool, principal: Principal, *, login: str, name: str, grants: list[Grant],
                 password_hash: str | None, pin_verifier: str | None) -> Done:
    async with pool.acquire() as conn, conn.transaction():
        await check_grants(conn, principal, grants)
        if await conn.fetchval("SELECT EXISTS (SELECT FROM users WHERE login = $1)", login):
            raise ApiError(409, f"the login {login!r} is taken: choose another")
        try:
            user_id = await create_user(conn, tenant=principal.tenant, login=login, name=name, actor=principal.login,
                                        password_hash=password_hash, pin_verifier=pin_verifier, grants=grants)
        except asyncpg.UniqueViolationError:  # made by someone else in the same instant
            raise ApiError(409, f"the login {login!r} is taken: choose another") from None
        return Done(await _after(conn, login), await stores_of(conn, user_id))


@dataclass(frozen=True)
class Changes:
    name: str | None = None
    active: bool | None = None
    password_hash: str | None = None
    pin_verifier: str | None = None
    unlock: bool = False


async def change(pool: asyncpg.Pool, principal: Principal, login: str, changes: Changes,
                 keep_session: bytes = b"") -> Done:
    """Apply `changes` to `login` in one transaction, each audited; `keep_session`: the token hash of the
    actor's own session, kept when they set their own password (their other sessions end)."""
    async with pool.acquire() as conn, conn.transaction():
        myself = login == principal.login
        only_own = changes.active is None and not changes.unlock
        target = await find(conn, principal, login, manage=not (myself and only_own), lock=True)
        if myself and changes.active is False:
            raise ApiError(403, "you may not deactivate yourself: ask another admin")

        async def audit(action: str, **details: Any) -> None:
            await record(conn, Entry(principal.tenant, principal.login, action, target=login, details=details))

        if changes.name is not None and changes.name != target.name:
            await conn.execute("UPDATE users SET name = $2, updated_at = now() WHERE id = $1", target.id, changes.name)
            await audit("user.changed", name={"from": target.name, "to": changes.name})
        if changes.active is not None and changes.active != target.active:
            await conn.execute("UPDATE users SET active = $2, updated_at = now() WHERE id = $1", target.id,
                               changes.active)
            if not changes.active:
                await close_sessions_of(conn, target.id)
            await audit("user.reactivated" if changes.active else "user.deactivated")
        if changes.password_hash is not None:
            await conn.execute("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", target.id,
                               changes.password_hash)
            await conn.execute("DELETE FROM console_sessions WHERE user_id = $1 AND token_hash <> $2", target.id,
                               keep_session if myself else b"")
            await audit("user.password_set")
        if changes.pin_verifier is not None:
            await conn.execute("UPDATE users SET pin_verifier = $2, updated_at = now() WHERE id = $1", target.id,
                               changes.pin_verifier)
            await audit("user.pin_set")
        if changes.unlock and target.locked:
            await conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", target.id)
            await audit("user.unlocked")
        await bump_version(conn, principal.tenant)
        return Done(await _after(conn, login), await stores_of(conn, target.id))


async def grant_role(pool: asyncpg.Pool, principal: Principal, login: str, grant: Grant) -> Done:
    async with pool.acquire() as conn, conn.transaction():
        await check_place(conn, principal.tenant, store=grant.store, region=grant.region)
        target = await find(conn, principal, login, manage=login != principal.login, lock=True)
        check_grant(principal, grant)
        if Assignment(grant.role, grant.region, grant.store) in target.assignments:
            raise ApiError(409, f"{login} already holds that role")
        try:
            await conn.execute("INSERT INTO user_roles (user_id, tenant, role, region, store)"
                               " VALUES ($1, $2, $3, $4, $5)",
                               target.id, principal.tenant, grant.role.value, grant.region, grant.store)
        except asyncpg.UniqueViolationError:  # granted by someone else in the same instant
            raise ApiError(409, f"{login} already holds that role") from None
        await record(conn, Entry(principal.tenant, principal.login, "role.granted", store=grant.store, target=login,
                                 details=describe_grant(grant)))
        await bump_version(conn, principal.tenant)
        return Done(await _after(conn, login), {grant.store} if grant.store else set())


async def revoke_role(pool: asyncpg.Pool, principal: Principal, login: str, grant: Grant) -> Done:
    async with pool.acquire() as conn, conn.transaction():
        target = await find(conn, principal, login, manage=login != principal.login, lock=True)
        held = Assignment(grant.role, grant.region, grant.store)
        if held not in target.assignments:
            raise ApiError(404, f"{login} does not hold that role")
        check_grant(principal, grant)
        if login == principal.login and Permission.MANAGE_USERS in PERMISSIONS[grant.role] and not any(
                Permission.MANAGE_USERS in PERMISSIONS[a.role] for a in target.assignments if a != held):
            raise ApiError(403, "you may not revoke your own last role that manages users: ask another admin")
        await conn.execute(
            "DELETE FROM user_roles WHERE user_id = $1 AND role = $2 AND region IS NOT DISTINCT FROM $3"
            " AND store IS NOT DISTINCT FROM $4", target.id, grant.role.value, grant.region, grant.store)
        await record(conn, Entry(principal.tenant, principal.login, "role.revoked", store=grant.store, target=login,
                                 details=describe_grant(grant)))
        await bump_version(conn, principal.tenant)
        return Done(await _after(conn, login), {grant.store} if grant.store else set())
