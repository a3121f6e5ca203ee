"""The web till page and what it loads first: its stylesheet and script, the store (its tills) and the catalog.

The page is plain files (edge/static: till.html, till.css, till.js; no build step). /static/{name} serves
only the files named in ASSETS, so no path a client sends ever reaches the file system; they are revalidated
on every load (no-cache), so a till picks up a new page as soon as the edge is updated.

/api/products reads the store's local catalog (actors.catalog.local), a page at a time: 100,000 items
are never one answer. `?q=` searches (a SKU or barcode prefix, or part of the name), `?after=<sku>`
continues after the last SKU of the previous page (the answer's `next`), `?limit=` (1 to MAX_LIMIT)
sets the page's size. Each product shows the price in force now in this store and its tax rule.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from actors.catalog.local import LocalCatalog, Offer, catalog_path
from novapos.adapters.http import ApiError, route
from novapos.config import StoreConfig
from novapos.validators import MAX_BARCODE_LENGTH, Invalid, describe, integer, text, token

STATIC = Path(__file__).resolve().parent.parent / "static"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
QUERY_PARAMETERS = frozenset({"q", "after", "limit"})
ASSETS = {"till.css": "text/css; charset=utf-8", "till.js": "text/javascript; charset=utf-8",
          "till-customer.js": "text/javascript; charset=utf-8"}


def _product(offer: Offer | str, barcode: str) -> dict[str, Any] | None:
    if isinstance(offer, str):
        return None  # not sellable now (no price in force, no tax rate here): not offered on the page
    return {"sku": offer.sku, "barcode": barcode, "name": offer.name,
            "price": {"minor": offer.unit_minor, "currency": offer.currency},
            "tax": {"class": offer.tax_class, "rate_ppm": offer.rate_ppm, "included": offer.included}}


def _limit(raw: str | None) -> int:
    """The page size from the query string: digits only (a query parameter is text), within bounds."""
    if raw is None:
        return DEFAULT_LIMIT
    number: object = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else raw
    return integer("limit", number, 1, MAX_LIMIT)


def page_routes(config: StoreConfig) -> list[Route]:
    path = catalog_path(config.state_dir)

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC / "till.html", headers={"cache-control": "no-cache"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise ApiError(404, f"the till page has no file {describe(name)}")
        return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"cache-control": "no-cache"})

    async def store(_request: Request) -> Response:
        return JSONResponse({"tenant": config.tenant, "store": config.store, "tills": list(config.tills),
                             "currency": config.currency,
                             "denominations": list(config.cash.for_currency(config.currency))})

    def read_page(query: str, after: str, limit: int) -> dict[str, Any]:
        catalog = LocalCatalog(path, config.store, config.region)
        try:
            offers, barcodes, following = catalog.page(query, after, limit, int(time.time() * 1000))
            version = catalog.version()
        finally:
            catalog.close()
        shown = [p for p in (_product(o, b) for o, b in zip(offers, barcodes, strict=True)) if p is not None]
        return {"currency": config.currency, "catalog_version": version, "products": shown, "next": following}

    async def products(request: Request) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - QUERY_PARAMETERS)
        if unknown:
            raise ApiError(422, f"unknown query parameter(s) {', '.join(unknown)[:80]}: use q, after and limit")
        try:
            query = text("q", params["q"], max_length=MAX_BARCODE_LENGTH) if "q" in params else ""
            after = token("after", params["after"]) if "after" in params else ""
            limit = _limit(params.get("limit"))
        except Invalid as exc:
            raise ApiError(422, str(exc)) from None
        if not path.exists():
            return JSONResponse({"currency": config.currency, "catalog_version": 0, "products": [], "next": None})
        return JSONResponse(await trio.to_thread.run_sync(read_page, query, after, limit))

    return [
        route("/", GET=index),
        route("/static/{name}", GET=asset),
        route("/api/store", GET=store),
        route("/api/products", GET=products),
    ]
