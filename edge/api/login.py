"""PIN login at a till: log in, log out, lock and unlock the screen, and who is logged in.

POST /api/tills/{till}/login {login, pin} checks the PIN (edge.api.auth.check_pin: worker thread, lockout,
offline window), then makes the login (actors.staff.logins: only the token's hash is kept) and tells the till
actor its session; the answer sets the till's HttpOnly, SameSite=Strict cookie (Secure over https) and is the
till's state. A new login at a till replaces the one before it, and the open cart stays with the till, as it
does on logout: switching cashier is logout and login. Lock keeps the login but the door (edge.api.auth)
answers 423 to everything but whoami, unlock and logout until the same user's PIN unlocks it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.protocol import Rejected
from actors.staff.logins import LOGINS, token_hash
from edge.api.asking import ask, known_till
from edge.api.auth import check_pin, cookie_name, current_user, pin_text
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, route
from novapos.validators import text


def login_routes(tree: Tree, tills: tuple[str, ...]) -> list[Route]:
    async def till_state(till: str, method: str, *args: Any) -> dict[str, Any]:
        answer = await ask(tree, f"till.{till}", method, *args)
        if isinstance(answer, Rejected):
            raise ApiError(409, answer.message)
        state: dict[str, Any] = answer
        return state

    def token_of(request: Request, till: str) -> str:
        return token_hash(request.cookies.get(cookie_name(till), ""))

    async def log_in(request: Request) -> Response:
        till = known_till(request, tills)
        body = await json_body(request)
        login = text("login", body.get("login"), max_length=64).lower()
        pin = pin_text("pin", body.get("pin"))
        await check_pin(tree, login, pin, till)
        made = await ask(tree, LOGINS, "logged_in", login, till)
        if isinstance(made, str):
            raise ApiError(403, made)
        state = await till_state(till, "log_in", {"id": made["session"], "cashier": made["login"],
                                                  "name": made["name"], "roles": made["roles"],
                                                  "offline": made["offline"]})
        response = JSONResponse(state)
        response.set_cookie(cookie_name(till), made["token"], httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    async def log_out(request: Request) -> Response:
        till = known_till(request, tills)
        current_user(request)
        await ask(tree, LOGINS, "log_out", till, token_of(request, till))
        response = JSONResponse(await till_state(till, "log_out"))
        response.delete_cookie(cookie_name(till), path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    async def lock(request: Request) -> Response:
        till = known_till(request, tills)
        user = current_user(request)
        await ask(tree, LOGINS, "lock", till, token_of(request, till), True)
        return JSONResponse(whoami_of(user, locked=True))

    async def unlock(request: Request) -> Response:
        till = known_till(request, tills)
        user = current_user(request)
        pin = pin_text("pin", (await json_body(request)).get("pin"))
        await check_pin(tree, user.login, pin, till)
        await ask(tree, LOGINS, "lock", till, token_of(request, till), False)
        return JSONResponse(whoami_of(user, locked=False))

    async def whoami(request: Request) -> Response:
        known_till(request, tills)
        return JSONResponse(whoami_of(current_user(request), locked=None))

    def whoami_of(user: Any, locked: bool | None) -> dict[str, Any]:
        return {"till": user.till, "login": user.login, "name": user.name, "roles": list(user.roles),
                "session": user.session, "offline": user.offline,
                "locked": user.locked if locked is None else locked}

    return [
        route("/api/tills/{till}/login", POST=log_in),
        route("/api/tills/{till}/logout", POST=log_out),
        route("/api/tills/{till}/lock", POST=lock),
        route("/api/tills/{till}/unlock", POST=unlock),
        route("/api/tills/{till}/whoami", GET=whoami),
    ]
