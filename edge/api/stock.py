"""GET /api/stock/{sku}: an item's stock here and nearby, as the hub knows it, for the till to show.

Always a 200 the till can show: the hub's answer (status "known"), the hub's refusal ("refused": this store
is not provisioned), or, when NATS or the hub does not answer within about a second, "offline" with the
sentence "not known while offline: ..." and the last answer this store had (actors.stock).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.api.asking import ask
from edge_runtime import Tree
from novapos.adapters.http import ApiError, route
from novapos.validators import token

STOCK = "stock"
"""The stock actor's name in the tree."""
ASK_TIMEOUT_S = 3.0
"""Past the actor's own bound (about a second, more while a never-connected link tries once)."""


def stock_routes(tree: Tree) -> list[Route]:
    async def stock(request: Request) -> Response:
        sku = token("sku", request.path_params["sku"])
        try:
            return JSONResponse(await ask(tree, STOCK, "stock", sku, timeout=ASK_TIMEOUT_S))
        except ApiError as unanswered:  # the actor is busy or restarting: still an answer the till can show
            return JSONResponse({"sku": sku, "status": "offline", "in_catalog": None, "as_of": None, "locations": [],
                                 "message": f"not known now: {unanswered.message}", "last_known": None})

    return [route("/api/stock/{sku}", GET=stock)]
