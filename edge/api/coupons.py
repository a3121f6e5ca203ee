"""The till's coupon routes (behind the PIN login): enter a code for the sale, take it off.

A code is checked here (printable text of at most 64 characters, normalised to upper case) before the till hears
of it; the till reserves it at the hub, or accepts a promotion's public code offline (actors.till.coupons).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.till.coupons import checked_code
from edge.api.asking import ask, known_till, unless_refused
from edge.api.auth import signed_in
from edge_runtime import Tree
from novapos.adapters.http import json_body, route
from novapos.roles import Permission
from novapos.validators import text


def coupon_routes(tree: Tree, tills: tuple[str, ...]) -> list[Route]:
    async def add_coupon(request: Request) -> Response:
        till = known_till(request, tills)
        code = checked_code((await json_body(request)).get("code"))
        await signed_in(request, tree, Permission.SELL)
        return JSONResponse(unless_refused(await ask(tree, f"till.{till}", "add_coupon", code)))

    async def remove_coupon(request: Request) -> Response:
        till = known_till(request, tills)
        code = checked_code(text("code", request.path_params["code"], max_length=64))
        await signed_in(request, tree, Permission.SELL)
        return JSONResponse(unless_refused(await ask(tree, f"till.{till}", "remove_coupon", code)))

    return [
        route("/api/tills/{till}/coupons", POST=add_coupon),
        route("/api/tills/{till}/coupons/{code}", DELETE=remove_coupon),
    ]
