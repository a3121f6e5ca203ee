"""The till's JSON HTTP API (documented at /openapi.json), the web till page, /healthz and /metrics.

Handlers validate input here, at the edge of the process, and only then ask the till actor; a
business refusal from the actor (actors.protocol.Rejected) becomes a 404/409/422 with its message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pykka
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from actors.devices.context import MANAGER, SPOOLER
from actors.protocol import Rejected
from edge.events import EventHub
from edge.openapi import openapi_document
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, metrics, with_api_errors
from novapos.config import StoreConfig

STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}
STATIC = Path(__file__).parent / "static"
KEEPALIVE_S = 15.0
ASK_TIMEOUT_S = 35.0  # longer than the till's own wait for a durable commit


def _string(data: dict[str, Any], key: str, max_length: int = 64) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, f"'{key}' is required and must be a non-empty string")
    if len(value) > max_length:
        raise ApiError(422, f"'{key}' must be at most {max_length} characters")
    return value.strip()


def _whole_number(data: dict[str, Any], key: str, default: int | None, minimum: int, maximum: int) -> int:
    value = data.get(key, default)
    if value is None:
        raise ApiError(422, f"'{key}' is required")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(422, f"'{key}' must be a whole number, got {value!r}")
    if not minimum <= value <= maximum:
        raise ApiError(422, f"'{key}' must be between {minimum} and {maximum}, got {value}")
    return value


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


def build_api(config: StoreConfig, tree: Tree, events: EventHub) -> Starlette:
    tills = set(config.tills)

    async def ask_till(request: Request, method: str, *args: Any) -> JSONResponse:
        till = request.path_params["till"]
        if till not in tills:
            raise ApiError(404, f"this store has no till {till!r} (tills: {', '.join(sorted(tills))})")
        try:
            answer = await tree.ask(f"till.{till}", method, *args, timeout=ASK_TIMEOUT_S)
        except pykka.Timeout:
            raise ApiError(503, f"till {till} did not answer within {ASK_TIMEOUT_S:.0f} s. Send the same request "
                                "again: completing the same cart twice never sells it twice") from None
        if isinstance(answer, Rejected):
            raise ApiError(STATUS[answer.reason], answer.message)
        return JSONResponse(answer)

    async def till_state(request: Request) -> Response:
        return await ask_till(request, "state")

    async def open_session(request: Request) -> Response:
        body = await json_body(request)
        return await ask_till(request, "open_session", _string(body, "cashier"))

    async def close_session(request: Request) -> Response:
        return await ask_till(request, "close_session")

    async def void_tenders(request: Request) -> Response:
        return await ask_till(request, "void_tenders")

    async def remove_line(request: Request) -> Response:
        return await ask_till(request, "remove_line", request.path_params["sku"])

    async def void_cart(request: Request) -> Response:
        return await ask_till(request, "void_cart")

    async def add_line(request: Request) -> Response:
        body = await json_body(request)
        barcode = _string(body, "barcode")
        quantity = _whole_number(body, "quantity", 1, 1, 9999)
        return await ask_till(request, "add_line", barcode, quantity)

    async def tender(request: Request) -> Response:
        body = await json_body(request)
        if body.get("method", "cash") != "cash":
            raise ApiError(422, f"tender method {body.get('method')!r} is not accepted here: use 'cash'")
        return await ask_till(request, "tender_cash", _whole_number(body, "amount_minor", None, 1, 10**9))

    async def complete(request: Request) -> Response:
        body = await json_body(request)
        cart = body.get("cart")
        if cart is not None and not isinstance(cart, str):
            raise ApiError(422, "'cart' must be the cart id string from the till state")
        return await ask_till(request, "complete", cart)

    async def products(_request: Request) -> Response:
        return JSONResponse({"currency": config.currency, "products": [
            {"sku": p.sku, "barcode": p.barcode, "name": p.name, "price": p.price.to_wire()}
            for p in config.products]})

    async def store(_request: Request) -> Response:
        return JSONResponse({"tenant": config.tenant, "store": config.store, "tills": list(config.tills)})

    async def healthz(_request: Request) -> Response:
        healthy = tree.healthy()
        depth = await tree.ask("outbox", "depth") if healthy else None
        return JSONResponse({"status": "ok" if healthy else "failing", "outbox_depth": depth},
                            status_code=200 if healthy else 503)

    async def devices(_request: Request) -> Response:
        return JSONResponse(await tree.ask(MANAGER, "statuses"))

    async def print_jobs(_request: Request) -> Response:
        return JSONResponse(await tree.ask(SPOOLER, "jobs"))

    async def live(_request: Request) -> Response:
        """Server-sent events: device status and till state as they change (current device states first)."""
        async def stream() -> AsyncIterator[str]:
            with events.subscribe() as received:
                for status in await tree.ask(MANAGER, "statuses"):
                    yield _sse(status)
                while True:
                    event = None
                    with trio.move_on_after(KEEPALIVE_S):  # never yield inside a cancel scope
                        try:
                            event = await received.receive()
                        except trio.EndOfChannel:  # fell behind: end the stream, the browser reconnects
                            return
                    yield _sse(event) if event is not None else ": keepalive\n\n"
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def openapi(_request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC / "till.html")

    return with_api_errors(Starlette(routes=[
        Route("/", index),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route("/api/store", store),
        Route("/api/products", products),
        Route("/api/devices", devices),
        Route("/api/print-jobs", print_jobs),
        Route("/api/events", live),
        Route("/api/tills/{till}", till_state),
        Route("/api/tills/{till}/session", open_session, methods=["POST"]),
        Route("/api/tills/{till}/session", close_session, methods=["DELETE"]),
        Route("/api/tills/{till}/lines", add_line, methods=["POST"]),
        Route("/api/tills/{till}/lines/{sku}", remove_line, methods=["DELETE"]),
        Route("/api/tills/{till}/cart", void_cart, methods=["DELETE"]),
        Route("/api/tills/{till}/tenders", tender, methods=["POST"]),
        Route("/api/tills/{till}/tenders", void_tenders, methods=["DELETE"]),
        Route("/api/tills/{till}/complete", complete, methods=["POST"]),
    ]))
