"""The console's sign-in API: POST /api/login, POST /api/logout, GET /api/session.

A good password opens a session: an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) and a CSRF token
in the answer that the page sends back in X-CSRF-Token on every change. A wrong login and a wrong password
get the same answer after the same time (an unknown login is checked against a dummy verifier).
Password checks run in worker threads, at most SLOW_CHECKS at once, so a flood of sign-ins cannot take
every core from the hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console.context import Console
from hub.identity import login as signing
from hub.identity.access import COOKIE, signed_in
from hub.identity.sessions import principal_for
from hub.identity.users import LOGIN_PATTERN, login_name
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.passwords import check, dummy_verifier
from novapos.roles import PERMISSIONS, Permission, Role

SLOW_CHECKS = 2
MAX_PASSWORD_LENGTH = 256
_WRONG = "the login or the password is wrong"

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_SESSION = {"description": "who is signed in, their roles and permissions, and the CSRF token for changes",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}}
OPENAPI: dict[str, Any] = {"paths": {
    "/api/login": {"post": {
        "summary": "Sign in to the console: sets the session cookie; [console] lock_after (default 5) wrong passwords "
                   "in a row lock the login for lock_for_minutes (default 15)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Login"}}}},
        "responses": {"200": _SESSION, "400": {"$ref": "#/components/responses/BadRequest"},
                      "401": {"description": "the login or the password is wrong", "content": _ERROR},
                      "403": {"description": "the user is deactivated, or has no console role", "content": _ERROR},
                      "422": {"description": "a field is malformed", "content": _ERROR},
                      "429": {"description": "the login is locked after repeated failures; until when",
                              "content": _ERROR}}}},
    "/api/logout": {"post": {"summary": "Sign out: the session ends at the hub and the cookie is cleared",
                             "responses": {"204": {"description": "signed out"}}}},
    "/api/session": {"get": {"summary": "The signed-in user", "responses": {
        "200": _SESSION, "401": {"description": "not signed in", "content": _ERROR}}}},
}, "schemas": {
    "Login": {"type": "object", "required": ["login", "password"], "properties": {
        "login": {"type": "string", "pattern": f"^{LOGIN_PATTERN}$", "maxLength": 64},
        "password": {"type": "string", "minLength": 1, "maxLength": MAX_PASSWORD_LENGTH}}},
    "Session": {"type": "object", "properties": {
        "user": {"type": "string"}, "name": {"type": "string"}, "tenant": {"type": "string"},
        "csrf": {"type": "string", "description": "send back in X-CSRF-Token on every POST, PUT, PATCH, DELETE"},
        "roles": {"type": "array", "items": {"type": "object", "properties": {
            "role": {"type": "string"}, "region": {"type": ["string", "null"]}, "store": {"type": ["string", "null"]}}}},
        "permissions": {"type": "array", "items": {"type": "string"}}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    limiter = trio.CapacityLimiter(SLOW_CHECKS)

    async def login(request: Request) -> Response:
        body = await json_body(request)
        name = login_name("login", body.get("login"))
        password = validators.text("password", body.get("password"), max_length=MAX_PASSWORD_LENGTH)
        client = request.client.host if request.client else "unknown"
        settings = console.config.console
        pool = console.ready_pool()
        user = await console.seam.run(signing.find_user, pool, name)
        if user is not None and user["locked"]:
            raise ApiError(429, f"this login is locked after {settings.lock_after} wrong passwords in a row until "
                                f"{user['locked_until']:%H:%M} UTC: try again then, or ask an admin to unlock it")
        verifier = user["password_hash"] if user is not None and user["password_hash"] else dummy_verifier()
        right = await trio.to_thread.run_sync(check, password, verifier, limiter=limiter)
        if user is None or not user["password_hash"]:
            raise ApiError(401, _WRONG)
        if not right:
            locked = await console.seam.run(signing.failed, pool, user, client, "wrong password", settings)
            if locked is not None:
                raise ApiError(429, f"this login is now locked after {settings.lock_after} wrong passwords in a row, "
                                    f"until {locked:%H:%M} UTC")
            raise ApiError(401, _WRONG)
        if not user["active"]:
            await console.seam.run(signing.refused, pool, user, client, "deactivated")
            raise ApiError(403, "this user is deactivated: ask an admin")
        if not any(Permission.CONSOLE in PERMISSIONS[Role(role)] for role in user["roles"]):
            await console.seam.run(signing.refused, pool, user, client, "no console role")
            raise ApiError(403, "this user has no console role (cashiers sign in at the till)")
        token, _csrf = await console.seam.run(signing.succeeded, pool, user, client, settings)
        principal = await console.seam.run(principal_for, pool, token, settings)
        if principal is None:  # deactivated in the instant between
            raise ApiError(401, _WRONG)
        response = JSONResponse(principal.as_json())
        response.set_cookie(COOKIE, token, max_age=int(settings.absolute.total_seconds()), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    async def logout(request: Request) -> Response:
        response = Response(status_code=204)
        token = request.cookies.get(COOKIE)
        if token and len(token) <= 128:
            principal = await signed_in(console, request)
            await console.seam.run(signing.signed_out, console.ready_pool(), token, principal.tenant, principal.login)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def session(request: Request) -> Response:
        return JSONResponse((await signed_in(console, request)).as_json())

    return [route("/api/login", POST=login), route("/api/logout", POST=logout), route("/api/session", GET=session)]
