"""GET /api/payments/follow-ups: the store's card payments taken offline that the hub's provider later declined.

The customer left with the goods and the money never came: a manager (VIEW_PAYMENTS, a store manager at the store)
sees each one (till, amount, card, why) to follow up, beside the offline limits in force and what counts against
them now (actors.payments.cards). Any till's login may ask; the role decides.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.payments.cards import NAME as CARDS
from edge.api.asking import ask
from edge.api.auth import signed_in
from edge_runtime import Tree
from novapos.adapters.http import route
from novapos.roles import Permission


def follow_up_routes(tree: Tree) -> list[Route]:
    async def follow_ups(request: Request) -> Response:
        await signed_in(request, tree, Permission.VIEW_PAYMENTS)
        return JSONResponse({"follow_ups": await ask(tree, CARDS, "follow_ups"),
                             "offline": await ask(tree, CARDS, "offline_state")})

    return [route("/api/payments/follow-ups", GET=follow_ups)]
