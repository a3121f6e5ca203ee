"""The till API (behind the PIN login, edge.api.login and edge.api.auth): one till's cart lines, cash tenders and completing the sale.

Every value a client sends is checked here with novapos.validators, before any actor hears of it,
against the same bounds the wire schema holds a sale to: what passes here can always be committed.
A business refusal from the till actor (actors.protocol.Rejected) becomes a 404/409/422 with its message;
a store whose disk is busy (its database locked by another program) a 503 that says to send again.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.protocol import Rejected
from edge.api.asking import ask
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, route
from novapos.validators import (
    MAX_BARCODE_LENGTH,
    MAX_LINE_QUANTITY,
    describe,
    integer,
    minor_units,
    text,
    token,
    uuid_text,
)

STATUS = {"not_found": 404, "conflict": 409, "invalid": 422, "busy": 503}


def till_routes(tree: Tree, tills: tuple[str, ...]) -> list[Route]:
    async def ask_till(request: Request, method: str, *args: Any) -> JSONResponse:
        till = request.path_params["till"]
        if till not in tills:
            raise ApiError(404, f"this store has no till {describe(till)} (tills: {', '.join(tills)})")
        answer = await ask(tree, f"till.{till}", method, *args)
        if isinstance(answer, Rejected):
            raise ApiError(STATUS[answer.reason], answer.message)
        return JSONResponse(answer)

    async def state(request: Request) -> Response:
        return await ask_till(request, "state")

    async def add_line(request: Request) -> Response:
        body = await json_body(request)
        barcode = text("barcode", body.get("barcode"), max_length=MAX_BARCODE_LENGTH)
        quantity = integer("quantity", body.get("quantity", 1), 1, MAX_LINE_QUANTITY)
        return await ask_till(request, "add_line", barcode, quantity)

    async def remove_line(request: Request) -> Response:
        return await ask_till(request, "remove_line", token("sku", request.path_params["sku"]))

    async def void_cart(request: Request) -> Response:
        return await ask_till(request, "void_cart")

    async def tender(request: Request) -> Response:
        body = await json_body(request)
        method = token("method", body.get("method", "cash"))
        if method != "cash":
            raise ApiError(422, f"tender method {method!r} is not accepted here: use 'cash'")
        amount = minor_units("amount_minor", body.get("amount_minor"), minimum=1)
        tender_id = body.get("id")  # the page's id for this tender: a resend of it takes the cash once
        return await ask_till(request, "tender_cash", amount, None if tender_id is None else uuid_text("id", tender_id))

    async def void_tenders(request: Request) -> Response:
        return await ask_till(request, "void_tenders")

    async def complete(request: Request) -> Response:
        cart = (await json_body(request)).get("cart")
        return await ask_till(request, "complete", None if cart is None else uuid_text("cart", cart))

    async def open_drawer(request: Request) -> Response:
        """Open the drawer a cash sale still owes (its pulse was lost to a restart): once, recorded."""
        sale = uuid_text("sale", (await json_body(request)).get("sale"))
        return await ask_till(request, "open_drawer_for_sale", sale)

    return [
        route("/api/tills/{till}", GET=state),
        route("/api/tills/{till}/lines", POST=add_line),
        route("/api/tills/{till}/lines/{sku}", DELETE=remove_line),
        route("/api/tills/{till}/cart", DELETE=void_cart),
        route("/api/tills/{till}/tenders", POST=tender, DELETE=void_tenders),
        route("/api/tills/{till}/complete", POST=complete),
        route("/api/tills/{till}/drawer", POST=open_drawer),
    ]
