"""The till API (behind the PIN login: edge.api.login, edge.api.auth): one till's cart lines, tenders (cash,
cards through its terminal, QR payments through the hub: actors.till.qr) and completing the sale.

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
from actors.till.cart import Discount, discount
from edge.api.asking import ask, known_till, unless_refused
from edge.api.auth import authorized, signed_in
from edge.api.loyalty import redeeming
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission
from novapos.validators import (
    MAX_BARCODE_LENGTH,
    MAX_LINE_QUANTITY,
    MAX_MINOR,
    integer,
    minor_units,
    text,
    token,
    uuid_text,
)


def till_routes(tree: Tree, tills: tuple[str, ...]) -> list[Route]:
    async def ask_till(request: Request, method: str, *args: Any) -> JSONResponse:
        till = known_till(request, tills)
        return JSONResponse(unless_refused(await ask(tree, f"till.{till}", method, *args)))

    async def state(request: Request) -> Response:
        return await ask_till(request, "state")

    async def add_line(request: Request) -> Response:
        body = await json_body(request)
        barcode = text("barcode", body.get("barcode"), max_length=MAX_BARCODE_LENGTH)
        quantity = integer("quantity", body.get("quantity", 1), 1, MAX_LINE_QUANTITY)
        return await ask_till(request, "add_line", barcode, quantity)

    def line_id(request: Request) -> str:
        """The path's line id (or, while a return is open, an SKU: see TillActor.remove_line)."""
        known_till(request, tills)
        return token("line", request.path_params["line"])

    def asked_discount(body: dict[str, Any]) -> Discount:
        kind = token("kind", body.get("kind"))
        found = discount(kind, integer("value", body.get("value"), 1, MAX_MINOR), text("reason", body.get("reason")))
        if isinstance(found, Rejected):
            raise ApiError(422, found.message)
        return found

    async def remove_line(request: Request) -> Response:
        line = line_id(request)
        await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "remove_line", line)

    async def set_quantity(request: Request) -> Response:
        line = line_id(request)
        quantity = integer("quantity", (await json_body(request)).get("quantity"), 1, MAX_LINE_QUANTITY)
        await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "set_quantity", line, quantity)

    async def override_price(request: Request) -> Response:
        line, body = line_id(request), await json_body(request)
        unit = minor_units("unit_minor", body.get("unit_minor"))
        reason = text("reason", body.get("reason"))
        user, approver = await authorized(request, tree, body, Permission.OVERRIDE)
        return await ask_till(request, "override_price", line, unit, reason, user.login, approver)

    async def discount_line(request: Request) -> Response:
        line, body = line_id(request), await json_body(request)
        asked = asked_discount(body)
        user, approver = await authorized(request, tree, body, Permission.DISCOUNT)
        return await ask_till(request, "discount_line", line, asked, user.login, approver)

    async def undiscount_line(request: Request) -> Response:
        line = line_id(request)
        user = await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "discount_line", line, None, user.login, None)

    async def discount_order(request: Request) -> Response:
        known_till(request, tills)
        body = await json_body(request)
        asked = asked_discount(body)
        user, approver = await authorized(request, tree, body, Permission.DISCOUNT)
        return await ask_till(request, "discount_order", asked, user.login, approver)

    async def undiscount_order(request: Request) -> Response:
        known_till(request, tills)
        user = await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "discount_order", None, user.login, None)

    async def voider(request: Request, body: dict[str, Any]) -> tuple[str, str | None]:
        """Who voids, and the approver: once tendering began (money taken or a card pending), a void needs
        Permission.OVERRIDE (a manager's PIN for a cashier); before it, selling is enough."""
        state = await ask(tree, f"till.{known_till(request, tills)}", "state")
        if any(tender["state"] in ("approved", "pending") for tender in state.get("tenders", [])):
            user, approver = await authorized(request, tree, body, Permission.OVERRIDE)
            return user.login, approver
        return (await signed_in(request, tree, Permission.SELL)).login, None

    async def void_cart(request: Request) -> Response:
        by, approver = await voider(request, await json_body(request))
        return await ask_till(request, "void_cart", by, approver)

    async def tender(request: Request) -> Response:
        body = await json_body(request)
        known_till(request, tills)
        await signed_in(request, tree, Permission.SELL)
        method = token("method", body.get("method", "cash"))
        if method in ("points", "gift_card"):
            name, args = redeeming(body, method)
            return await ask_till(request, name, *args)
        if method not in ("cash", "card", "qr"):
            raise ApiError(422, f"tender method {method!r} is not accepted here: use 'cash', 'card', 'qr', 'points' "
                                "or 'gift_card'")
        amount = minor_units("amount_minor", body.get("amount_minor"), minimum=1)
        tender_id = body.get("id")  # the page's id for this tender: a resend of it takes the money once
        if method in ("card", "qr"):
            if tender_id is None:
                raise ApiError(422, f"a {method} tender needs its id (a UUID the page makes): it names the payment at "
                                    f"the {'terminal' if method == 'card' else 'hub'}, so a resend never charges twice")
            return await ask_till(request, "tender_card" if method == "card" else "tender_qr", amount,
                                  uuid_text("id", tender_id))
        return await ask_till(request, "tender_cash", amount, None if tender_id is None else uuid_text("id", tender_id))

    async def qr_code(request: Request) -> Response:
        """The pending QR payment's pay URL as an SVG QR code (the page shows it as an image)."""
        tender_id = uuid_text("tender", request.path_params["tender"])
        till = known_till(request, tills)
        await signed_in(request, tree, Permission.SELL)
        image = unless_refused(await ask(tree, f"till.{till}", "qr_code", tender_id))
        return Response(image, media_type="image/svg+xml", headers={"cache-control": "no-store"})

    async def void_tenders(request: Request) -> Response:
        by, approver = await voider(request, await json_body(request))
        return await ask_till(request, "void_tenders", by, approver)

    async def cancel_tender(request: Request) -> Response:
        """The customer cancels a card payment still waiting for the card (the page's Cancel button)."""
        tender_id = uuid_text("tender", request.path_params["tender"])
        known_till(request, tills)
        await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "cancel_tender", tender_id)

    async def remove_tender(request: Request) -> Response:
        """Give back one tender: cash by hand, a card approval reversed at the terminal (an override)."""
        body = await json_body(request)
        tender_id = uuid_text("tender", request.path_params["tender"])
        known_till(request, tills)
        user, approver = await authorized(request, tree, body, Permission.OVERRIDE)
        return await ask_till(request, "remove_tender", tender_id, user.login, approver)

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
        route("/api/tills/{till}/lines/{line}", PATCH=set_quantity, DELETE=remove_line),
        route("/api/tills/{till}/lines/{line}/price", POST=override_price),
        route("/api/tills/{till}/lines/{line}/discount", POST=discount_line, DELETE=undiscount_line),
        route("/api/tills/{till}/discount", POST=discount_order, DELETE=undiscount_order),
        route("/api/tills/{till}/cart", DELETE=void_cart),
        route("/api/tills/{till}/tenders", POST=tender, DELETE=void_tenders),
        route("/api/tills/{till}/tenders/{tender}/qr.svg", GET=qr_code),
        route("/api/tills/{till}/tenders/{tender}", DELETE=remove_tender),
        route("/api/tills/{till}/tenders/{tender}/cancel", POST=cancel_tender),
        route("/api/tills/{till}/complete", POST=complete),
        route("/api/tills/{till}/drawer", POST=open_drawer),
    ]
