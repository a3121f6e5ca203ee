"""The web till page and what it loads first: the store (its tills) and the catalog."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from novapos.adapters.http import route
from novapos.config import StoreConfig

STATIC = Path(__file__).resolve().parent.parent / "static"


def page_routes(config: StoreConfig) -> list[Route]:
    async def index(_request: Request) -> Response:
        return FileResponse(STATIC / "till.html")

    async def store(_request: Request) -> Response:
        return JSONResponse({"tenant": config.tenant, "store": config.store, "tills": list(config.tills)})

    async def products(_request: Request) -> Response:
        return JSONResponse({"currency": config.currency, "products": [
            {"sku": p.sku, "barcode": p.barcode, "name": p.name, "price": p.price.to_wire()}
            for p in config.products]})

    return [
        route("/", GET=index),
        route("/api/store", GET=store),
        route("/api/products", GET=products),
    ]
