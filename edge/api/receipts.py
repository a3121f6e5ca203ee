"""The till's last receipt: what it says (GET) and printing it again after a printer fault (POST).

A reprint is the cashier's choice once the printer is back (paper loaded, cover closed): the spooler
retries a job that failed by itself, so this is for a receipt that came out torn, blank or not at all
and the customer still wants one. It needs a signed-in user whose role may sell; the spooler audits it
(till.reprint, with the order id) before it queues the copy, which is marked "REPRINT - COPY" on paper.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actors.devices.context import SPOOLER
from edge.api.asking import ask, known_till, unless_refused
from edge.api.auth import signed_in
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, route
from novapos.config import StoreConfig
from novapos.roles import Permission

SPOOLER_TIMEOUT_S = 10.0
"""The spooler answers from its file; a reprint also waits for the audit record's commit."""


def receipt_routes(tree: Tree, config: StoreConfig) -> list[Route]:
    printers = {till: getattr(config.devices.for_till("printer", till), "name", None) for till in config.tills}

    async def asked(request: Request, method: str, *args: str) -> JSONResponse:
        """The spooler's answer about the path's till, once its user may sell there."""
        till = known_till(request, printers)
        user = await signed_in(request, tree, Permission.SELL)
        printer = printers[till]
        if printer is None:
            raise ApiError(409, f"till {till} has no receipt printer in the store config")
        extra = (user.login,) if method == "reprint" else ()
        return JSONResponse(unless_refused(await ask(tree, SPOOLER, method, till, printer, *args, *extra,
                                                     timeout=SPOOLER_TIMEOUT_S)))

    async def last(request: Request) -> Response:
        return await asked(request, "last_receipt")

    async def reprint(request: Request) -> Response:
        await json_body(request)  # nothing to read, but a POST is JSON like every other (415 otherwise)
        return await asked(request, "reprint")

    return [
        route("/api/tills/{till}/receipts/last", GET=last),
        route("/api/tills/{till}/receipts/last/print", POST=reprint),
    ]
