"""Who is asking at a till, and what their role allows: every till route but /healthz and /metrics asks here.

`signed_in(request, tree, permission)` is the user logged in at the till in the path (401 when nobody is),
refused with a 403 that names the roles that may when their role does not allow `permission`.
`authorized(request, tree, body, permission)` is the same, except that a user whose role does not allow the
action may have it approved on the spot: a manager's override, `body["override"] = {"login", "pin"}`, checked
for this one action; it answers (user, approver login or None). Every override is audited by the caller's
action with both users (actors.storage.audit.record_at_store).

FOUNDATION STUB (issue 9): the session is the till's typed-in cashier, every role is allowed, and an override's
PIN is not checked. The login work replaces the bodies of these functions, keeping their signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from edge.api.asking import ask
from edge_runtime import Tree
from novapos.adapters.http import ApiError
from novapos.roles import Permission
from novapos.validators import text


@dataclass(frozen=True)
class TillUser:
    """A person at the till, as the store's staff list names them."""
    login: str
    name: str
    roles: tuple[str, ...]


async def signed_in(request: Request, tree: Tree, permission: Permission | None = None) -> TillUser:
    """The user logged in at the till of the path; 401 when nobody is, 403 when their role may not."""
    till = request.path_params["till"]
    state = await ask(tree, f"till.{till}", "state")
    session = state.get("session")
    if session is None:
        raise ApiError(401, f"nobody is logged in at till {till}: log in with your PIN first")
    return TillUser(session["cashier"], session["cashier"], ("cashier",))


async def authorized(request: Request, tree: Tree, body: dict[str, Any],
                     permission: Permission) -> tuple[TillUser, str | None]:
    """The user and, when their role does not allow `permission`, the approver whose override does."""
    user = await signed_in(request, tree)
    override = body.get("override")
    if isinstance(override, dict):
        return user, text("override login", override.get("login"), max_length=64)
    return user, None
