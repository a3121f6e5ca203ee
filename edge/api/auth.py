"""Who is asking at a till, and what their role allows: every till route but the login itself asks here.

The door (LoginDoor, around the edge's routes) lets no /api/ request through without the cookie of a login
(edge.api.login) except the public ones: POST /api/tills/{till}/login and /api/store (the page's list of
tills, before anyone logs in); /healthz, /metrics, /openapi.json, the page and its files are not under /api/.
A route of a till (/api/tills/{till}/...) needs that till's own cookie (one per till, so one browser may serve
two tills, and a token copied to another till's cookie is refused); the others (/api/events, devices, stock,
products) any till's. A locked till answers only whoami, unlock and logout. The user found is kept on the
request for the handler:

`signed_in(request, tree, permission)` is the user logged in at the till of the path, refused with a 403 that
names the roles that may when their role does not allow `permission`.
`authorized(request, tree, body, permission)` is the same, except that a user whose role does not allow the
action may have it approved on the spot: another user's override, `body["override"] = {"login", "pin"}`,
checked for this one action (their PIN, their lockout, their role); it answers (user, approver login or None).
Every override is audited by the caller's action with both users (actors.storage.audit.record_at_store).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import trio
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from actors.staff.logins import LOGINS, token_hash
from edge.api.asking import ask
from edge_runtime import Tree
from novapos import passwords
from novapos.adapters.http import ApiError, error_response
from novapos.roles import Permission, Role, roles_with
from novapos.validators import Invalid, text

log = logging.getLogger(__name__)

COOKIE_PREFIX = "novapos_till_"
"""The login cookie of till T is `novapos_till_T`."""
LOG_IN = "log in with your PIN at this till"
MAX_PIN_LENGTH = 32
PIN_CHECKS = trio.CapacityLimiter(2)
"""PIN checks at once (each ~0.15 s of a core): a flood of guesses queues instead of starving the tills."""
PUBLIC = re.compile(r"/api/store|/api/tills/[^/]+/login")
WHILE_LOCKED = re.compile(r"/api/tills/[^/]+/(whoami|unlock|logout)|/api/events")
TILL_PATH = re.compile(r"/api/tills/([^/]+)(?:/.*)?")
ROLE_WORDS = {Role.STORE_MANAGER: "store manager", Role.SUPERVISOR: "supervisor", Role.CASHIER: "cashier"}
ACTION_WORDS = {Permission.SELL: "selling", Permission.OVERRIDE: "this override",
                Permission.NO_SALE: "opening the drawer without a sale", Permission.REFUND: "a refund",
                Permission.DISCOUNT: "a discount", Permission.CASH_MOVES: "a pay-in, pay-out or drop",
                Permission.VIEW_PAYMENTS: "the payment follow-ups"}


@dataclass(frozen=True)
class TillUser:
    """A person logged in at a till, as the store's staff list names them now."""
    login: str
    name: str
    roles: tuple[str, ...]
    till: str = ""
    session: str = ""
    """The login's id (the till's session id, in every sale made under it)."""
    offline: bool = False
    locked: bool = False

    def may(self, permission: Permission) -> bool:
        return any(role in (r.value for r in roles_with(permission)) for role in self.roles)


def cookie_name(till: str) -> str:
    return f"{COOKIE_PREFIX}{till}"


class LoginDoor:
    """ASGI middleware: the login check of every /api/ request but the public ones (module docstring)."""

    def __init__(self, app: ASGIApp, tree: Tree, tills: tuple[str, ...]) -> None:
        self._app = app
        self._tree = tree
        self._tills = frozenset(tills)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or PUBLIC.fullmatch(path) \
                or scope.get("method") == "OPTIONS":
            await self._app(scope, receive, send)
            return
        match = TILL_PATH.fullmatch(path)
        till = match.group(1) if match else None
        if till is not None and till not in self._tills:  # the route's own 404 names the store's tills
            await self._app(scope, receive, send)
            return
        try:
            user = await self._user(HTTPConnection(scope), till)
            if user.locked and not WHILE_LOCKED.fullmatch(path):
                raise ApiError(423, f"till {user.till} is locked: {user.name} unlocks it with their PIN")
        except ApiError as refused:
            await error_response(refused.status, refused.message)(scope, receive, send)
            return
        scope.setdefault("state", {})["till_user"] = user
        await self._app(scope, receive, send)

    async def _user(self, connection: HTTPConnection, till: str | None) -> TillUser:
        cookies = connection.cookies
        names = [cookie_name(till)] if till is not None else sorted(n for n in cookies if n.startswith(COOKIE_PREFIX))
        for name in names:
            token = cookies.get(name)
            if not token or len(token) > 100:
                continue
            found = await ask(self._tree, LOGINS, "who", token_hash(token))
            if found is None or found["till"] != name.removeprefix(COOKIE_PREFIX):
                continue  # ended, or a token of another till put in this till's cookie
            if "ended" in found:
                await ask(self._tree, f"till.{found['till']}", "log_out")
                raise ApiError(401, f"{found['ended']} is no longer on this store's staff list: their login has ended")
            return TillUser(found["login"], found["name"], tuple(found["roles"]), found["till"], found["session"],
                            found["offline"], found["locked"])
        where = f"till {till}" if till is not None else "a till of this store"
        raise ApiError(401, f"nobody is logged in at {where} on this device: {LOG_IN}")


def current_user(request: Request) -> TillUser:
    """The user the door let in (401 if the route is not behind the door: a wiring mistake)."""
    user = request.scope.get("state", {}).get("till_user")
    if not isinstance(user, TillUser):
        raise ApiError(401, f"nobody is logged in: {LOG_IN}")
    return user


def refusal(permission: Permission, roles: tuple[str, ...]) -> str:
    """The 403's sentence: what needs which roles, and what to do."""
    allowed = roles_with(permission)
    words = " or ".join(ROLE_WORDS.get(role, role.value) for role in allowed)
    held = ", ".join(roles) or "none"
    return (f"{ACTION_WORDS.get(permission, permission.value)} needs a {words} (roles: "
            f"{', '.join(role.value for role in allowed)}; yours: {held}): ask one to approve with their PIN")


async def signed_in(request: Request, tree: Tree, permission: Permission | None = None) -> TillUser:
    """The user logged in at the till of the path; 401 when nobody is, 403 when their role may not."""
    user = current_user(request)
    if permission is not None and not user.may(permission):
        raise ApiError(403, refusal(permission, user.roles))
    return user


async def authorized(request: Request, tree: Tree, body: dict[str, Any],
                     permission: Permission) -> tuple[TillUser, str | None]:
    """The user and, when their role does not allow `permission`, the approver whose override does."""
    user = current_user(request)
    if user.may(permission):
        return user, None
    override = body.get("override")
    if override is None:
        raise ApiError(403, refusal(permission, user.roles))
    if not isinstance(override, dict):
        raise Invalid("override", "must be an object {login, pin}")
    login = text("override login", override.get("login"), max_length=64).lower()
    pin = pin_text("override pin", override.get("pin"))
    approver = await check_pin(tree, login, pin, user.till, who="the approver's")
    if not approver.may(permission):
        raise ApiError(403, f"{approver.name} may not approve this: {refusal(permission, approver.roles)}")
    log.info("login: %s approved %s for %s at till %s", approver.login, permission.value, user.login, user.till)
    return user, approver.login


def pin_text(where: str, value: Any) -> str:
    """A PIN as typed: digits only, 1 to MAX_PIN_LENGTH of them."""
    pin = text(where, value, max_length=MAX_PIN_LENGTH)
    if not pin.isascii() or not pin.isdigit():
        raise Invalid(where, "must be digits only")
    return pin


async def check_pin(tree: Tree, login: str, pin: str, till: str, who: str = "the") -> TillUser:
    """`login`'s PIN checked at `till` against the staff list (in a worker thread); the user, or a 401/403/423.
    A wrong PIN counts toward that login's lockout; an unknown login takes as long as a known one."""
    prepared = await ask(tree, LOGINS, "prepare", login)
    if prepared["refusal"] is not None:
        raise ApiError(403, prepared["refusal"])
    if prepared["locked_until"] is not None:
        raise locked(prepared["locked_until"])
    async with PIN_CHECKS:
        right = await trio.to_thread.run_sync(passwords.check, pin, prepared["verifier"])
    member = prepared["member"]
    if not right or member is None:
        until = await ask(tree, LOGINS, "failed", login, till)
        if until is not None:
            raise locked(until)
        wrong = f"{who} login or PIN is wrong: try again"
        raise ApiError(401, wrong[0].upper() + wrong[1:])
    return TillUser(member["login"], member["name"], tuple(member["roles"]), till)


def locked(until: float) -> ApiError:
    """423 for a locked-out login, with when it ends (UTC, to the minute) and what to do meanwhile."""
    minutes = max(1, round((until - time.time()) / 60))
    ends = time.strftime("%H:%M UTC", time.gmtime(until))
    return ApiError(423, f"too many wrong PINs: this login is locked for {minutes} more min (until {ends}); "
                         "a store manager can help meanwhile")
