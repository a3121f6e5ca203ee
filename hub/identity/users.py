"""Users and their roles at the hub (asyncio side): the records the console signs in against, the
assignments a Principal is made of. Secrets arrive here already turned into verifiers
(novapos.passwords.make_verifier, run off the event loop by the caller): scrypt must not stall the seam."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from hub.audit.chain import Entry, record
from hub.identity.staff import bump_version
from novapos import validators
from novapos.roles import SCOPE_OF, Role, Scope

LOGIN_PATTERN = r"[a-z0-9][a-z0-9._@-]{0,63}"
_LOGIN = re.compile(LOGIN_PATTERN)


def login_name(where: str, value: object) -> str:
    """A login as typed (case does not matter: it is kept in lower case), or Invalid saying what is allowed."""
    text = validators.text(where, value, max_length=64).lower()
    if not _LOGIN.fullmatch(text):
        raise validators.Invalid(where, "may hold only letters, digits and . _ @ - (starting with a letter or "
                                        f"digit), not {validators.describe(value)}")
    return text


@dataclass(frozen=True)
class Grant:
    """One role to assign, with the region or store its scope needs."""
    role: Role
    region: str | None = None
    store: str | None = None

    def check(self) -> Grant:
        scope = SCOPE_OF[self.role]
        if (self.region is not None) != (scope is Scope.REGION) or (self.store is not None) != (scope is Scope.STORE):
            need = {Scope.TENANT: "neither a region nor a store", Scope.REGION: "a region and no store",
                    Scope.STORE: "a store and no region"}[scope]
            raise validators.Invalid(f"the role {self.role.value}", f"is held with {need}")
        return self


async def create_user(conn: asyncpg.Connection, *, tenant: str, login: str, name: str, actor: str,
                      password_hash: str | None = None, pin_verifier: str | None = None,
                      grants: Iterable[Grant] = ()) -> int:
    """A new user with their roles, audited as `actor`'s, the tenant's staff lists moved on; its id."""
    async with conn.transaction():
        user_id = await conn.fetchval(
            "INSERT INTO users (tenant, login, name, password_hash, pin_verifier) VALUES ($1, $2, $3, $4, $5)"
            " RETURNING id", tenant, login, name, password_hash, pin_verifier)
        grants = [grant.check() for grant in grants]
        await conn.executemany(
            "INSERT INTO user_roles (user_id, tenant, role, region, store) VALUES ($1, $2, $3, $4, $5)",
            [(user_id, tenant, grant.role.value, grant.region, grant.store) for grant in grants])
        await record(conn, Entry(tenant, actor, "user.created", target=login, details={
            "name": name, "roles": [{"role": g.role.value, "region": g.region, "store": g.store} for g in grants],
            "console": password_hash is not None, "till": pin_verifier is not None}))
        await bump_version(conn, tenant)
    return int(user_id)
