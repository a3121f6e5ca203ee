"""The console's catalog API: reads under /api/catalog/..., and one POST per kind of change, each answering
the catalog version it made ({"version": N}). A refused change is a 422 whose sentence names the field.

Every route authorizes first (hub.identity.access): reads need VIEW_CATALOG; products, barcodes, tax classes
and settings need EDIT_CATALOG across the tenant; a price needs SET_PRICES covering its scope (the tenant,
the region, the store). The tenant is always the signed-in user's: `tenant` in the query or the body may be
left out, and naming another is a 404. Each change is audited with the user as its actor.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.catalog import changes, service
from hub.console import keyset
from hub.console.context import Console
from hub.console.openapi import AUTH_RESPONSES
from hub.identity.access import authorize, tenant_of
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission
from novapos.validators import TOKEN_PATTERN, Invalid, describe

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_REFUSED = {"description": "the change was refused, nothing changed; the error names the field and says why",
            "content": _ERROR}
_VERSION = {"description": "the change is in; the catalog version it made", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/CatalogVersion"}}}}
_TENANT_QUERY = {"name": "tenant", "in": "query", "required": False,
                 "description": "the signed-in user's tenant (may be left out); another tenant is a 404",
                 "schema": {"type": "string", "pattern": f"^{TOKEN_PATTERN}$"}}
_TENANT_FIELD = {"type": "string", "pattern": f"^{TOKEN_PATTERN}$",
                 "description": "the signed-in user's tenant (may be left out); another tenant is a 404"}
_TOKEN = {"type": "string", "pattern": f"^{TOKEN_PATTERN}$", "maxLength": validators.MAX_TOKEN_LENGTH}
_TEXT = {"type": "string", "minLength": 1, "maxLength": validators.MAX_TEXT_LENGTH}


def _change(summary: str, schema: str) -> dict[str, Any]:
    return {"post": {"summary": summary, "requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{schema}"}}}},
        "responses": {"200": _VERSION, "400": {"$ref": "#/components/responses/BadRequest"}, **AUTH_RESPONSES,
                      "404": {"description": "no such tenant", "content": _ERROR}, "422": _REFUSED}}}


OPENAPI: dict[str, Any] = {"paths": {
    "/api/catalog/products": {"get": {
        "summary": "Products by id: all, or those whose name holds `q`, or whose id, an SKU or a barcode is `q`",
        "parameters": [_TENANT_QUERY,
                       {"name": "q", "in": "query", "required": False, "schema": _TEXT},
                       {"name": "after", "in": "query", "required": False, "description": "the `next` of the "
                        "previous page: the last product id shown", "schema": _TOKEN},
                       {"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": service.MAX_LISTED, "default": 50}}],
        "responses": {"200": {"description": "by product id, a page at a time", "content": {"application/json": {
            "schema": keyset.schema("ProductSummary", service.MAX_LISTED)}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, "404": {"$ref": "#/components/responses/NotFound"},
            **AUTH_RESPONSES},
    }},
    "/api/catalog/products/{id}": {"get": {
        "summary": "One product with its variants, each with its barcodes and prices",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": _TOKEN}, _TENANT_QUERY],
        "responses": {"200": {"description": "the product", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Product"}}}}, "400": {"$ref": "#/components/responses/BadRequest"},
            "404": {"$ref": "#/components/responses/NotFound"},
            **AUTH_RESPONSES},
    }},
    "/api/catalog/tax-classes": {"get": {
        "summary": "The tenant's tax classes with their rate per region",
        "parameters": [_TENANT_QUERY],
        "responses": {"200": {"description": "by id", "content": {"application/json": {"schema": {
            "type": "array", "items": {"$ref": "#/components/schemas/TaxClass"}}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, "404": {"$ref": "#/components/responses/NotFound"},
            **AUTH_RESPONSES},
    }},
    "/api/catalog/settings": {"get": {
        "summary": "The tenant's currency, whether its shelf prices include tax, its catalog version and the version "
                   "its stores' stream holds",
        "parameters": [_TENANT_QUERY],
        "responses": {"200": {"description": "the settings", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/CatalogSettings"}}}},
            "400": {"$ref": "#/components/responses/BadRequest"}, "404": {"$ref": "#/components/responses/NotFound"},
            **AUTH_RESPONSES},
    }},
    "/api/catalog/product-changes": _change(
        "Create or update a product and the variants listed (others keep theirs)", "ProductChange"),
    "/api/catalog/barcode-changes": _change(
        "Set a variant's barcodes (its whole set); EAN-13, UPC-A and EAN-8 check digits are verified", "BarcodeChange"),
    "/api/catalog/price-changes": _change(
        "Set a variant's price for the tenant, a region or a store, from a time on (now when left out); needs "
        "prices.set covering that scope", "PriceChange"),
    "/api/catalog/tax-class-changes": _change(
        "Create or rename a tax class and set its rate (parts per million) in the regions listed", "TaxClassChange"),
    "/api/catalog/settings-changes": _change(
        "Set whether the tenant's shelf prices include tax", "SettingsChange"),
}, "schemas": {
    "CatalogVersion": {"type": "object", "properties": {"version": {"type": "integer", "minimum": 1}}},
    "ProductSummary": {"type": "object", "properties": {
        "product": _TOKEN, "name": _TEXT, "tax_class": _TOKEN, "attributes": {"type": "array", "items": {"type": "string"}},
        "active": {"type": "boolean"}, "version": {"type": "integer"}, "variants": {"type": "integer"}}},
    "Product": {"type": "object", "properties": {
        "product": _TOKEN, "name": _TEXT, "tax_class": _TOKEN, "category": {"type": ["string", "null"]}, "attributes": {"type": "array", "items": {"type": "string"}},
        "active": {"type": "boolean"}, "version": {"type": "integer"},
        "variants": {"type": "array", "items": {"type": "object", "properties": {
            "sku": _TOKEN, "name": _TEXT, "values": {"type": "array", "items": {"type": "string"}},
            "active": {"type": "boolean"}, "version": {"type": "integer"},
            "barcodes": {"type": "array", "items": {"type": "string"}},
            "prices": {"type": "array", "items": {"type": "object", "properties": {
                "scope": {"enum": ["tenant", "region", "store"]}, "scope_id": {"type": "string"},
                "effective_from": {"type": "string", "format": "date-time"},
                "amount_minor": {"type": "integer", "minimum": 0}}}}}}}}},
    "TaxClass": {"type": "object", "properties": {
        "tax_class": _TOKEN, "name": _TEXT, "version": {"type": "integer"}, "rates": {"type": "array", "items": {
            "type": "object", "properties": {"region": _TOKEN, "rate_ppm": {"type": "integer", "minimum": 0,
                                                                             "maximum": 1_000_000}}}}}},
    "CatalogSettings": {"type": "object", "properties": {
        "tenant": _TOKEN, "currency": {"type": "string", "pattern": f"^{validators.CURRENCY_PATTERN}$"},
        "prices_include_tax": {"type": "boolean"}, "version": {"type": "integer", "minimum": 0},
        "published_version": {"type": "integer", "minimum": 0, "description": "the version on the stores' stream"}}},
    "ProductChange": {"type": "object", "required": ["product", "name", "tax_class"], "properties": {
        "tenant": _TENANT_FIELD, "product": _TOKEN, "name": _TEXT, "tax_class": _TOKEN,
        "category": {"type": ["string", "null"], "maxLength": validators.MAX_CATEGORY_LENGTH,
                     "pattern": f"^({validators.CATEGORY_PATTERN})?$", "description": "a path, food/dairy/cheese "
                     "(promotions target it and everything below it); null or '': none; left out: unchanged"},
        "attributes": {"type": "array", "maxItems": 3, "items": {"type": "string"}, "description": "size, colour..."},
        "active": {"type": "boolean", "default": True},
        "variants": {"type": "array", "maxItems": changes.MAX_VARIANTS, "items": {"type": "object",
            "required": ["sku"], "properties": {
                "sku": _TOKEN, "values": {"type": "array", "items": {"type": "string"},
                                          "description": "one per attribute, in the product's order"},
                "name": {**_TEXT, "description": "left out: the product's name and the values"},
                "active": {"type": "boolean", "default": True}}}}}},
    "BarcodeChange": {"type": "object", "required": ["sku", "barcodes"], "properties": {
        "tenant": _TENANT_FIELD, "sku": _TOKEN,
        "barcodes": {"type": "array", "items": {"type": "string", "maxLength": validators.MAX_BARCODE_LENGTH}}}},
    "PriceChange": {"type": "object", "required": ["sku", "amount_minor"], "properties": {
        "tenant": _TENANT_FIELD, "sku": _TOKEN, "scope": {"enum": ["tenant", "region", "store"], "default": "tenant"},
        "scope_id": {**_TOKEN, "description": "the region or store of an override"},
        "effective_from": {"type": "string", "format": "date-time", "description": "with its UTC offset; default now"},
        "amount_minor": {"type": "integer", "minimum": 0, "maximum": validators.MAX_MINOR}}},
    "TaxClassChange": {"type": "object", "required": ["tax_class", "name"], "properties": {
        "tenant": _TENANT_FIELD, "tax_class": _TOKEN, "name": _TEXT, "rates": {"type": "array", "items": {
            "type": "object", "properties": {"region": _TOKEN, "rate_ppm": {"type": "integer", "minimum": 0,
                                                                             "maximum": 1_000_000}}}}}},
    "SettingsChange": {"type": "object", "required": ["prices_include_tax"], "properties": {
        "tenant": _TENANT_FIELD, "prices_include_tax": {"type": "boolean"}}},
}}


def routes(console: Console) -> Sequence[BaseRoute]:
    async def run(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        try:
            return await console.seam.run(functools.partial(fn, console.ready_pool(), *args, **kwargs))
        except service.NotFound as exc:
            raise ApiError(404, str(exc)) from None

    async def viewer(request: Request) -> str:
        """The tenant a read concerns, once the user may view its catalog (anywhere in it)."""
        principal = await authorize(console, request, Permission.VIEW_CATALOG)
        return tenant_of(principal, request.query_params.get("tenant"))

    async def products(request: Request) -> Response:
        tenant = await viewer(request)
        params = request.query_params
        try:
            text = validators.text("q", params["q"]) if params.get("q", "").strip() else ""
            after = validators.token("after", params["after"]) if "after" in params else ""
            raw = params.get("limit", "50")
            limit = validators.integer("limit", int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 6 else raw,
                                       1, service.MAX_LISTED)
        except Invalid as exc:
            raise ApiError(400, str(exc)) from None
        rows = await run(service.search, tenant, text, after, limit + 1)
        return JSONResponse(keyset.page(rows, limit, lambda row: [row["product"]]))

    async def product(request: Request) -> Response:
        tenant = await viewer(request)
        raw = request.path_params["id"]
        try:
            product_id = validators.token("product", raw)
        except Invalid:
            raise ApiError(404, f"there is no product {describe(raw)}: a product id is a name of letters, digits, "
                                "'-' and '_'") from None
        return JSONResponse(await run(service.product, tenant, product_id))

    async def tax_classes(request: Request) -> Response:
        return JSONResponse(await run(service.tax_classes, await viewer(request)))

    async def settings(request: Request) -> Response:
        return JSONResponse(await run(service.settings, await viewer(request)))

    def change(apply: Callable[..., Awaitable[int]], parse: Callable[[dict[str, Any]], Any]) \
            -> Callable[[Request], Awaitable[Response]]:
        """Products, barcodes, tax classes and settings are the whole tenant's: EDIT_CATALOG tenant-wide."""
        async def handler(request: Request) -> Response:
            principal = await authorize(console, request, Permission.EDIT_CATALOG, tenant_wide=True)
            body = await json_body(request)
            tenant = tenant_of(principal, body.get("tenant"))
            return JSONResponse({"version": await run(apply, tenant, parse(body), actor=principal.login)})
        return handler

    async def price(request: Request) -> Response:
        """A price needs SET_PRICES covering where it applies: the tenant, its region or its store. A region or
        store the tenant does not have is refused as unknown before the reach is asked (no tenant's ids leak)."""
        principal = await authorize(console, request, Permission.SET_PRICES)
        body = await json_body(request)
        tenant = tenant_of(principal, body.get("tenant"))
        change = changes.price_from_json(body)
        if change.scope == "tenant":
            principal.require(Permission.SET_PRICES, tenant_wide=True)
        else:
            if not await console.query(f"SELECT 1 FROM {change.scope}s WHERE tenant = $1 AND {change.scope} = $2",
                                       tenant, change.scope_id):
                raise Invalid("scope_id", f"{change.scope_id!r} is not a {change.scope} of {tenant}")
            if change.scope == "region":
                principal.require(Permission.SET_PRICES, region=change.scope_id)
            else:
                principal.require(Permission.SET_PRICES, store=change.scope_id)
        return JSONResponse({"version": await run(service.set_price, tenant, change, actor=principal.login)})

    return [
        route("/api/catalog/products", GET=products),
        route("/api/catalog/products/{id}", GET=product),
        route("/api/catalog/tax-classes", GET=tax_classes),
        route("/api/catalog/settings", GET=settings),
        route("/api/catalog/product-changes", POST=change(service.save_product, changes.product_from_json)),
        route("/api/catalog/barcode-changes", POST=change(service.set_barcodes, changes.barcodes_from_json)),
        route("/api/catalog/price-changes", POST=price),
        route("/api/catalog/tax-class-changes", POST=change(service.save_tax_class, changes.tax_class_from_json)),
        route("/api/catalog/settings-changes", POST=change(service.set_prices_include_tax,
                                                           changes.prices_include_tax_from_json)),
    ]
