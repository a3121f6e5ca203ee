"""The till's drawer session API: open with a float, pay-in/out and drops, no-sale, X report, blind close -> Z.

Every value is checked here, before the till actor hears of it: a count is an object of denominations (minor
units of this store's currency, as [cash] denominations lists them) to whole, non-negative numbers of pieces.
Who may: everyone logged in opens, reads the X report and closes; pay-ins, pay-outs and drops need
till.cash_moves, a no-sale till.no_sale, or a manager's override for that one action (edge.api.auth); a close
beyond the store's tolerance needs a manager: the user's own role if it may override, else an override.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.cash.desk import MOVES
from edge.api.asking import ask, known_till, unless_refused
from edge.api.auth import authorized, signed_in
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, route
from novapos.config import StoreConfig
from novapos.config.cash import MAX_COUNT
from novapos.money import Money
from novapos.roles import Permission
from novapos.validators import describe, integer, minor_units, text, token

MAX_DENOMINATIONS = 40
REASON_LENGTH = 200


def parse_count(where: str, value: Any, denominations: tuple[int, ...], currency: str) -> dict[int, int]:
    """{denomination (minor units, as text): pieces} -> {int: int}; 422 with a sentence for anything else."""
    if not isinstance(value, dict):
        raise ApiError(422, f"{where} must be an object of denomination (minor units) to number of pieces, "
                            'such as {"2000": 3, "50": 4}')
    if len(value) > MAX_DENOMINATIONS:
        raise ApiError(422, f"{where} may hold at most {MAX_DENOMINATIONS} denominations")
    counts: dict[int, int] = {}
    for key, pieces in value.items():
        if not (key.isascii() and key.isdigit() and 0 < len(key) <= 13 and int(key) in denominations):
            raise ApiError(422, f"{where}: {describe(key)} is not a note or coin of {currency} here; count in "
                                f"{', '.join(Money(d, currency).format() for d in denominations)} "
                                "(keys in minor units)")
        if isinstance(pieces, int) and not isinstance(pieces, bool) and pieces < 0:
            raise ApiError(422, f"{where}: a count cannot be negative ({pieces} x {Money(int(key), currency).format()})")
        counts[int(key)] = integer(f"{where}.{key}", pieces, 0, MAX_COUNT)
    return counts


def _reason(body: dict[str, Any], required: bool) -> str | None:
    value = body.get("reason")
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ApiError(422, "say why (reason): a pay-in, pay-out or drop is recorded with its reason")
        return None
    return text("reason", value, max_length=REASON_LENGTH)


def drawer_routes(tree: Tree, config: StoreConfig) -> list[Route]:
    tills = tuple(config.tills)
    denominations = config.cash.for_currency(config.currency)

    async def ask_till(request: Request, method: str, *args: Any) -> JSONResponse:
        till = known_till(request, tills)
        return JSONResponse(unless_refused(await ask(tree, f"till.{till}", method, *args)))

    async def session(request: Request) -> Response:
        known_till(request, tills)
        await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "drawer_state")

    async def open_session(request: Request) -> Response:
        known_till(request, tills)
        body = await json_body(request)
        user = await signed_in(request, tree, Permission.SELL)
        counts = parse_count("float", body.get("float"), denominations, config.currency)
        return await ask_till(request, "drawer_open", user.login, counts)

    async def move(request: Request) -> Response:
        known_till(request, tills)
        body = await json_body(request)
        kind = token("kind", body.get("kind"))
        if kind not in MOVES:
            raise ApiError(422, f"kind must be one of {', '.join(MOVES)} (a no-sale is POST .../no-sale)")
        amount = minor_units("amount_minor", body.get("amount_minor"), minimum=1)
        reason = _reason(body, required=True)
        user, approver = await authorized(request, tree, body, Permission.CASH_MOVES)
        return await ask_till(request, "drawer_move", kind, amount, reason, user.login, approver)

    async def no_sale(request: Request) -> Response:
        known_till(request, tills)
        body = await json_body(request)
        reason = _reason(body, required=False)
        user, approver = await authorized(request, tree, body, Permission.NO_SALE)
        return await ask_till(request, "drawer_no_sale", user.login, approver, reason)

    async def x_report(request: Request) -> Response:
        known_till(request, tills)
        user = await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "drawer_x_report", False, not user.may(Permission.OVERRIDE))

    async def print_x(request: Request) -> Response:
        known_till(request, tills)
        await json_body(request)
        user = await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "drawer_x_report", True, not user.may(Permission.OVERRIDE))

    async def close(request: Request) -> Response:
        known_till(request, tills)
        body = await json_body(request)
        counts = parse_count("counted", body.get("counted"), denominations, config.currency)
        if "override" in body:
            user, approver = await authorized(request, tree, body, Permission.OVERRIDE)
            approver = approver or user.login
        else:
            user, approver = await signed_in(request, tree, Permission.SELL), None
        return await ask_till(request, "drawer_close", user.login, counts, approver)

    base = "/api/tills/{till}/drawer-session"
    return [
        route(base, GET=session, POST=open_session),
        route(f"{base}/moves", POST=move),
        route(f"{base}/no-sale", POST=no_sale),
        route(f"{base}/x-report", GET=x_report),
        route(f"{base}/x-report/print", POST=print_x),
        route(f"{base}/close", POST=close),
    ]

