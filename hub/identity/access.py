"""The check every console route makes first: `authorize(console, request, permission, ...)`.

It finds the signed-in user from the session cookie (401 without one), refuses a state-changing request
that does not carry the session's CSRF token in the X-CSRF-Token header (403: a page of another site
cannot read the token, so it cannot forge the header), and then asks the Principal whether the permission
reaches the store or region named (403 with who could).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from hub.console.context import Console
from hub.identity.principal import Principal
from hub.identity.sessions import principal_for
from novapos import logs
from novapos.adapters.http import STATE_CHANGING, ApiError
from novapos.roles import Permission

COOKIE = "novapos_console"
CSRF_HEADER = "x-csrf-token"


async def signed_in(console: Console, request: Request) -> Principal:
    """The request's user (looked up once per request), or a 401 that says to sign in."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        raise ApiError(401, "sign in to the console first")
    principal = await console.seam.run(principal_for, console.ready_pool(), token, console.config.console)
    if principal is None:
        raise ApiError(401, "your session has ended (signed out, expired or the user was deactivated): sign in again")
    if request.method in STATE_CHANGING and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogateescape"), principal.csrf.encode()):
        raise ApiError(403, "this change lacks the console's CSRF token (X-CSRF-Token): reload the console and retry")
    request.state.principal = principal
    logs.bind(tenant=principal.tenant)
    return principal


async def authorize(console: Console, request: Request, permission: Permission, *, store: str | None = None,
                    region: str | None = None, tenant_wide: bool = False) -> Principal:
    """The signed-in user, if their roles grant `permission` where asked (see Principal.require); else 401/403."""
    principal = await signed_in(console, request)
    principal.require(permission, store=store, region=region, tenant_wide=tenant_wide)
    return principal


def tenant_of(principal: Principal, asked: object) -> str:
    """The tenant a request concerns: always the user's own. A `tenant` parameter naming another is a 404,
    as if it did not exist (it does not, for this user)."""
    if asked is not None and asked != principal.tenant:
        raise ApiError(404, "there is no such tenant")
    return principal.tenant
