"""The OpenAPI 3.1 description of the till API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

_MONEY = {"type": "object", "required": ["minor", "currency"],
          "properties": {"minor": {"type": "integer", "description": "minor units (cents)"},
                         "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}}
_ERROR = {"description": "refused; `error` says why and what to do",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_STATE = {"description": "the till's state after the request",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TillState"}}}}
_TILL = {"name": "till", "in": "path", "required": True, "schema": {"type": "string"}}


def _post(summary: str, body: dict[str, Any] | None, ok: dict[str, Any], errors: tuple[int, ...]) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "parameters": [_TILL],
                                 "responses": {"200": ok, **{str(code): _ERROR for code in errors}}}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return {"post": operation}


def _delete(summary: str, errors: tuple[int, ...], *more: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "parameters": [_TILL, *more],
            "responses": {"200": _STATE, **{str(code): _ERROR for code in errors}}}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "NovaPOS store edge: till API", "version": "1",
                 "description": "Open a session, scan lines, take cash, complete. A completed sale is on disk "
                                "before the answer; completing the same cart again returns the same receipt."},
        "paths": {
            "/api/tills/{till}": {"get": {"summary": "Till state: session, cart lines, total, tendered, due",
                                          "parameters": [_TILL], "responses": {"200": _STATE, "404": _ERROR}}},
            "/api/tills/{till}/session": {**_post(
                "Open a cashier session", {"type": "object", "required": ["cashier"],
                                           "properties": {"cashier": {"type": "string", "maxLength": 64}}},
                _STATE, (400, 404, 409, 422)), "delete": _delete("Close the session (the cart must be empty)", (404, 409))},
            "/api/tills/{till}/lines": _post(
                "Add a line by barcode", {"type": "object", "required": ["barcode"], "properties": {
                    "barcode": {"type": "string", "maxLength": 64},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 9999, "default": 1}}},
                _STATE, (400, 404, 409, 422)),
            "/api/tills/{till}/lines/{sku}": {"delete": _delete(
                "Remove a line from the cart (before any tender)", (404, 409),
                {"name": "sku", "in": "path", "required": True, "schema": {"type": "string"}})},
            "/api/tills/{till}/cart": {"delete": _delete(
                "Void the cart: its lines and tenders go (cash back), a new cart begins; nothing is sold",
                (404, 409))},
            "/api/tills/{till}/tenders": {**_post(
                "Take a cash tender", {"type": "object", "required": ["amount_minor"], "properties": {
                    "method": {"type": "string", "enum": ["cash"], "default": "cash"},
                    "amount_minor": {"type": "integer", "minimum": 1}}},
                _STATE, (400, 404, 409, 422)), "delete": _delete("Void the cart's tenders (cash back)", (404, 409))},
            "/api/tills/{till}/complete": _post(
                "Complete the sale (durably committed before the answer)",
                {"type": "object", "properties": {"cart": {"type": "string",
                                                           "description": "cart id from the state; makes retries safe"}}},
                {"description": "the receipt", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Receipt"}}}}, (400, 404, 409, 422)),
            "/api/products": {"get": {"summary": "The store's products", "responses": {"200": {"description": "products"}}}},
            "/api/store": {"get": {"summary": "Tenant, store and tills", "responses": {"200": {"description": "store"}}}},
            "/healthz": {"get": {"summary": "200 while the actor tree is healthy",
                                 "responses": {"200": {"description": "healthy"}, "503": {"description": "failing"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
        "components": {"schemas": {
            "Money": _MONEY,
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Line": {"type": "object", "properties": {
                "sku": {"type": "string"}, "name": {"type": "string"}, "quantity": {"type": "integer"},
                "unit_price": {"$ref": "#/components/schemas/Money"}, "amount": {"$ref": "#/components/schemas/Money"}}},
            "TillState": {"type": "object", "properties": {
                "till": {"type": "string"}, "session": {"type": ["object", "null"]}, "cart": {"type": "string"},
                "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                "total": {"$ref": "#/components/schemas/Money"}, "tendered": {"$ref": "#/components/schemas/Money"},
                "due": {"$ref": "#/components/schemas/Money"}}},
            "Receipt": {"type": "object", "properties": {
                "sale": {"type": "string", "description": "event id (UUIDv7)"},
                "seq": {"type": "integer", "description": "the store's sequence number"},
                "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                "total": {"$ref": "#/components/schemas/Money"}, "change": {"$ref": "#/components/schemas/Money"}}},
        }},
    }
