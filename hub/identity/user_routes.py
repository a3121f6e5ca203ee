"""The console's user management API: list, read, create and change users, grant and revoke their roles.

Every route authorizes first (hub.identity.access) and every rule of hub.identity.manage is checked again
inside the changing transaction; each change is audited in that transaction. Secrets become verifiers in a
worker thread (scrypt is slow on purpose), at most SLOW_CHECKS at once. After a change commits, the staff
lists of the stores it touched are published to them (hub.identity.staff), so a deactivated cashier is gone
from the store's tills within seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.identity import manage
from hub.identity.access import COOKIE, authorize, tenant_of
from hub.identity.principal import Principal
from hub.identity.sessions import token_hash
from hub.identity.staff import publish_lists
from hub.identity.users import LOGIN_PATTERN, Grant, login_name
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.passwords import make_verifier
from novapos.roles import Permission, Role

SLOW_CHECKS = 2
MAX_PAGE = 200
DEFAULT_PAGE = 50
_CHANGES = frozenset({"name", "active", "password", "pin", "unlock"})
_ROLE_FIELDS = frozenset({"role", "region", "store"})

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_LOGIN = {"type": "string", "pattern": f"^{LOGIN_PATTERN}$", "maxLength": 64}
_TOKEN = {"type": "string", "minLength": 1, "maxLength": validators.MAX_TOKEN_LENGTH,
          "pattern": f"^{validators.TOKEN_PATTERN}$"}
_NAME = {"type": "string", "minLength": 1, "maxLength": validators.MAX_TEXT_LENGTH}
_PASSWORD = {"type": "string", "minLength": manage.MIN_PASSWORD_LENGTH, "maxLength": manage.MAX_PASSWORD_LENGTH}
_PIN = {"type": "string", "pattern": f"^[0-9]{{{manage.PIN_DIGITS[0]},{manage.PIN_DIGITS[1]}}}$",
        "description": "digits only; one digit repeated or a straight run (1234, 9876) is refused"}
_GRANT = {"type": "object", "required": ["role"], "additionalProperties": False, "properties": {
    "role": {"type": "string", "enum": [role.value for role in Role]},
    "region": {**_TOKEN, "description": "for regional_admin only"},
    "store": {**_TOKEN, "description": "for store_manager, supervisor and cashier only"}}}
_USER = {"description": "the user, with their roles the caller may see",
         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}
_REFUSED = {
    "401": {"description": "not signed in", "content": _ERROR},
    "403": {"description": "no CSRF token on a change, or the caller's roles do not reach this user, role, region "
                           "or store (the sentence says who could)", "content": _ERROR},
    "404": {"description": "no such user, store or region in the caller's tenant", "content": _ERROR},
    "422": {"description": "a field is malformed (the sentence says which)", "content": _ERROR}}
_WRITE = {**_REFUSED, "400": {"$ref": "#/components/responses/BadRequest"},
          "409": {"description": "the login is taken, or the role is already held", "content": _ERROR},
          "415": {"$ref": "#/components/responses/BadRequest"}}
_PATH = [{"name": "login", "in": "path", "required": True, "schema": _LOGIN}]


def _post(summary: str, schema: dict[str, Any], answer: dict[str, Any] = _USER) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": _PATH, "requestBody": {"required": True, "content": {
        "application/json": {"schema": schema}}}, "responses": {"200": answer, **_WRITE}}}


OPENAPI: dict[str, Any] = {"paths": {
    "/api/users": {
        "get": {"summary": "The users the caller may see, by login (a tenant admin: the tenant's; a regional admin: "
                           "those with a role in their region or its stores; a store manager: those at their stores)",
                "parameters": [
                    {"name": "tenant", "in": "query", "schema": _TOKEN,
                     "description": "may be left out; another tenant than the caller's is not found (404)"},
                    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 64},
                     "description": "a login prefix or part of a name"},
                    {"name": "store", "in": "query", "schema": _TOKEN, "description": "only users with a role there"},
                    {"name": "after", "in": "query", "schema": _LOGIN, "description": "the previous page's `next`"},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}}],
                "responses": {"200": {"description": "one page", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "items": {"type": "array", "maxItems": MAX_PAGE,
                                  "items": {"$ref": "#/components/schemas/User"}},
                        "next": {"type": ["string", "null"], "description": "pass as `after` for the next page"}}}}}},
                    "400": {"description": "limit is not a whole number", "content": _ERROR}, **_REFUSED}},
        "post": {"summary": "Create a user with their roles (each one the caller may grant); password for the console, "
                            "PIN for the tills", "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["login", "name", "roles"], "properties": {
                        "login": _LOGIN, "name": _NAME, "password": _PASSWORD, "pin": _PIN,
                        "roles": {"type": "array", "minItems": 1, "maxItems": manage.MAX_ROLES, "items": _GRANT}}}}}},
                 "responses": {"201": _USER, **_WRITE}}},
    "/api/users/{login}": {"get": {"summary": "One user", "parameters": _PATH,
                                   "responses": {"200": _USER, **_REFUSED}}},
    "/api/users/{login}/changes": _post(
        "Change a user: name, active (false deactivates and ends their sessions), password (ends their other "
        "sessions), PIN, unlock (after the lockout); only the fields sent change. Anyone may change their own "
        "name, password and PIN; nobody deactivates themselves", {
            "type": "object", "minProperties": 1, "additionalProperties": False, "properties": {
                "name": _NAME, "active": {"type": "boolean"}, "password": _PASSWORD, "pin": _PIN,
                "unlock": {"type": "boolean", "const": True}}}),
    "/api/users/{login}/roles": _post("Grant a role (one the caller may grant, where the caller's scope reaches)",
                                      _GRANT),
    "/api/users/{login}/roles/revoke": _post(
        "Revoke a role the user holds (nobody revokes their own last role that manages users)", _GRANT),
}, "schemas": {
    "User": {"type": "object", "properties": {
        "login": _LOGIN, "name": _NAME, "active": {"type": "boolean"},
        "locked": {"type": "boolean", "description": "locked out after repeated wrong passwords"},
        "console": {"type": "boolean", "description": "has a console password"},
        "till": {"type": "boolean", "description": "has a till PIN"},
        "roles": {"type": "array", "items": _GRANT},
        "roles_elsewhere": {"type": "integer", "minimum": 0,
                            "description": "roles out of the caller's sight (another region's stores)"}}},
}}


def grant_of(where: str, value: object) -> Grant:
    """A role assignment from JSON ({role, region?, store?}), or Invalid."""
    if not isinstance(value, dict):
        raise validators.Invalid(where, f"must be an object {{role, region?, store?}}, got {validators.describe(value)}")
    if unknown := set(value) - _ROLE_FIELDS:
        raise validators.Invalid(where, f"has unknown fields {sorted(unknown)}: only role, region, store")
    role = value.get("role")
    if role not in {r.value for r in Role}:
        raise validators.Invalid(f"{where}'s role", f"must be one of {', '.join(r.value for r in Role)}, got "
                                                    f"{validators.describe(role)}")
    region, store = value.get("region"), value.get("store")
    return Grant(Role(role), None if region is None else validators.token(f"{where}'s region", region),
                 None if store is None else validators.token(f"{where}'s store", store)).check()


def _limit(request: Request) -> int:
    text = request.query_params.get("limit", str(DEFAULT_PAGE))
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    return validators.integer("limit", int(text), 1, MAX_PAGE)


def routes(console: Console) -> Sequence[BaseRoute]:
    limiter = trio.CapacityLimiter(SLOW_CHECKS)

    async def verifier(secret: str | None) -> str | None:
        return None if secret is None else await trio.to_thread.run_sync(make_verifier, secret, limiter=limiter)

    async def answer(principal: Principal, done: manage.Done, status: int = 200) -> Response:
        if done.stores:
            await console.seam.run(publish_lists, console.link, console.ready_pool(), principal.tenant, done.stores)
        return JSONResponse(done.target.as_json(principal), status_code=status)

    def path_login(request: Request) -> str:
        return login_name("login", request.path_params["login"])

    async def list_users(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_USERS)
        params = request.query_params
        tenant_of(principal, params.get("tenant"))
        q = params.get("q")
        store = params.get("store")
        after = params.get("after")
        page = await console.seam.run(partial(
            manage.listing, console.ready_pool(), principal,
            q=None if q is None else validators.text("q", q, max_length=64),
            store=None if store is None else validators.token("store", store),
            after=None if after is None else login_name("after", after), limit=_limit(request)))
        return JSONResponse(page)

    async def get_user(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_USERS)
        target = await console.seam.run(manage.find, console.ready_pool(), principal, path_login(request))
        return JSONResponse(target.as_json(principal))

    async def create(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_USERS)
        body = await json_body(request)
        if unknown := set(body) - {"login", "name", "password", "pin", "roles"}:
            raise validators.Invalid("the new user", f"has unknown fields {sorted(unknown)}")
        login = login_name("login", body.get("login"))
        name = validators.text("name", body.get("name"))
        roles = body.get("roles")
        if not isinstance(roles, list) or not 1 <= len(roles) <= manage.MAX_ROLES:
            raise validators.Invalid("roles", f"must be a list of 1 to {manage.MAX_ROLES} roles")
        grants = list(dict.fromkeys(grant_of(f"roles[{n}]", role) for n, role in enumerate(roles)))
        password = None if body.get("password") is None else manage.password("password", body["password"])
        pin = None if body.get("pin") is None else manage.pin("pin", body["pin"])
        # refused before the slow verifiers are made; checked again in the transaction
        await console.seam.run(manage.check_grants, console.ready_pool(), principal, grants)
        done = await console.seam.run(partial(
            manage.create, console.ready_pool(), principal, login=login, name=name, grants=grants,
            password_hash=await verifier(password), pin_verifier=await verifier(pin)))
        return await answer(principal, done, 201)

    async def change(request: Request) -> Response:
        principal = await authorize(console, request, Permission.CONSOLE)
        login = path_login(request)
        body = await json_body(request)
        if not body:
            raise validators.Invalid("the change", f"must name at least one of {', '.join(sorted(_CHANGES))}")
        if unknown := set(body) - _CHANGES:
            raise validators.Invalid("the change", f"has unknown fields {sorted(unknown)}: only "
                                                   f"{', '.join(sorted(_CHANGES))}")
        name = None if body.get("name") is None else validators.text("name", body["name"])
        active = body.get("active")
        if active is not None and not isinstance(active, bool):
            raise validators.Invalid("active", f"must be true or false, got {validators.describe(active)}")
        unlock = body.get("unlock", False)
        if unlock is not False and unlock is not True:
            raise validators.Invalid("unlock", f"must be true, got {validators.describe(unlock)}")
        password = None if body.get("password") is None else manage.password("password", body["password"])
        pin = None if body.get("pin") is None else manage.pin("pin", body["pin"])
        pool = console.ready_pool()
        if login != principal.login or active is not None or unlock:
            principal.require(Permission.MANAGE_USERS)
        if password is not None or pin is not None:  # refuse before the slow verifiers
            await console.seam.run(manage.find, pool, principal, login)
        changes = manage.Changes(name=name, active=active, password_hash=await verifier(password),
                                 pin_verifier=await verifier(pin), unlock=unlock)
        done = await console.seam.run(manage.change, pool, principal, login, changes,
                                      token_hash(request.cookies.get(COOKIE, "")))
        return await answer(principal, done)

    async def grant(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_USERS)
        login = path_login(request)
        role = grant_of("the role", await json_body(request))
        return await answer(principal, await console.seam.run(manage.grant_role, console.ready_pool(), principal,
                                                              login, role))

    async def revoke(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_USERS)
        login = path_login(request)
        role = grant_of("the role", await json_body(request))
        return await answer(principal, await console.seam.run(manage.revoke_role, console.ready_pool(), principal,
                                                              login, role))

    return [route("/api/users", GET=list_users, POST=create), route("/api/users/{login}", GET=get_user),
            route("/api/users/{login}/changes", POST=change), route("/api/users/{login}/roles", POST=grant),
            route("/api/users/{login}/roles/revoke", POST=revoke)]
