"""The returns API: find a sale by its receipt, take items back at a till, exchange, refund.

GET  /api/tills/{till}/returns/lookup?order=ID   the sale and what is still returnable (this store's journal,
                                                 else the hub; the receipt's QR text "novapos:order:ID" or the id)
POST /api/tills/{till}/returns                   {order} or {no_receipt: true, reason}: the till enters return mode
POST /api/tills/{till}/returns/gift-card         {card}: the part of the refund the sale paid by gift card goes back
                                                 to the card scanned (through the hub; refund-in-cash otherwise)
POST /api/tills/{till}/returns/lines             {original_line, quantity, condition} (with a receipt) or
                                                 {barcode, quantity, condition} (without)
Then the sale routes serve the return: POST .../lines scans an exchange's new line, .../tenders takes cash when
the customer owes, .../complete settles it (refund to the card through the terminal, or cash), DELETE .../cart
cancels it. Returns need Permission.REFUND (a cashier: a manager's PIN override); a return without a receipt
needs a manager's approval whatever the role (audited till.return_no_receipt).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.returns.lookup import NAME
from edge.api.asking import ask, known_till, unless_refused
from edge.api.auth import authorized, signed_in
from edge.api.loyalty import gift_card_number
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, route
from novapos.config.returns import CONDITIONS
from novapos.roles import Permission
from novapos.validators import MAX_BARCODE_LENGTH, MAX_LINE_QUANTITY, describe, integer, text
from novapos.wire.orders import order_id

LOOKUP_TIMEOUT_S = 5.0
MANAGER_ROLES = ("store_manager",)


def _condition(body: dict[str, Any]) -> str:
    condition = body.get("condition", "resaleable")
    if condition not in CONDITIONS:
        raise ApiError(422, f"condition must be one of {', '.join(CONDITIONS)}, got {describe(condition)}")
    return str(condition)


def return_routes(tree: Tree, tills: tuple[str, ...]) -> list[Route]:
    async def answered(answer: Any) -> JSONResponse:
        return JSONResponse(unless_refused(answer))

    async def find(order: str) -> dict[str, Any]:
        return dict(unless_refused(await ask(tree, NAME, "sale", order, timeout=LOOKUP_TIMEOUT_S)))

    async def lookup(request: Request) -> Response:
        known_till(request, tills)
        await signed_in(request, tree, Permission.SELL)
        return JSONResponse(await find(order_id("order", request.query_params.get("order"))))

    async def start(request: Request) -> Response:
        till = known_till(request, tills)
        body = await json_body(request)
        user, approver = await authorized(request, tree, body, Permission.REFUND)
        reason = None if body.get("reason") is None else text("reason", body.get("reason"), max_length=500)
        if body.get("no_receipt") is True:
            if "order" in body:
                raise ApiError(422, "send either an order or no_receipt, not both")
            if approver is None and not set(user.roles) & set(MANAGER_ROLES):
                raise ApiError(403, "a return without a receipt needs a manager's PIN (override)")
            if reason is None:
                raise ApiError(422, "reason must say why there is no receipt")
            return await answered(await ask(tree, f"till.{till}", "start_return", None, approver or user.login,
                                            reason))
        if "no_receipt" in body and body["no_receipt"] is not False:
            raise ApiError(422, "no_receipt must be true or false")
        sale = await find(order_id("order", body.get("order")))
        return await answered(await ask(tree, f"till.{till}", "start_return", sale, approver, reason))

    async def take_back(request: Request) -> Response:
        till = known_till(request, tills)
        body = await json_body(request)
        await signed_in(request, tree, Permission.SELL)  # the return itself was allowed when it started
        quantity = integer("quantity", body.get("quantity", 1), 1, MAX_LINE_QUANTITY)
        condition = _condition(body)
        if "original_line" in body:
            line = integer("original_line", body.get("original_line"), 1, MAX_LINE_QUANTITY)
            return await answered(await ask(tree, f"till.{till}", "take_back", line, quantity, condition))
        barcode = text("barcode", body.get("barcode"), max_length=MAX_BARCODE_LENGTH)
        return await answered(await ask(tree, f"till.{till}", "take_back_item", barcode, quantity, condition))

    async def refund_in_cash(request: Request) -> Response:
        """The refund the policy sends to the sale's QR payment goes to cash instead (the hub is away)."""
        till = known_till(request, tills)
        await signed_in(request, tree, Permission.SELL)
        return await answered(await ask(tree, f"till.{till}", "refund_in_cash"))

    async def refund_to_gift_card(request: Request) -> Response:
        """The part of the refund the sale paid by gift card goes back to the card scanned, through the hub."""
        till = known_till(request, tills)
        card = gift_card_number((await json_body(request)).get("card"))
        await signed_in(request, tree, Permission.SELL)
        return await answered(await ask(tree, f"till.{till}", "refund_to_gift_card", card))

    return [
        route("/api/tills/{till}/returns/lookup", GET=lookup),
        route("/api/tills/{till}/returns/refund-in-cash", POST=refund_in_cash),
        route("/api/tills/{till}/returns/gift-card", POST=refund_to_gift_card),
        route("/api/tills/{till}/returns", POST=start),
        route("/api/tills/{till}/returns/lines", POST=take_back),
    ]

