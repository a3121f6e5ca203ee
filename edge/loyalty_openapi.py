"""The OpenAPI paths of the till's customer routes (edge.api.loyalty), merged into edge.openapi's document."""

from __future__ import annotations

from typing import Any

_ERR = {"description": "refused; `error` says why and what to do",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_TILL = {"name": "till", "in": "path", "required": True, "schema": {"type": "string"}}
_STATE = {"description": "the till's state, its `customer` the attached one (card masked)",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TillState"}}}}
_UUID = {"type": "string", "format": "uuid"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _ERR for code in codes}


def _body(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": required, "properties": properties}}}}


LOYALTY_OPENAPI: dict[str, Any] = {
    "/api/tills/{till}/customers": {
        "get": {"summary": "Find customers by phone, email or loyalty card number (typed or scanned): the hub's "
                           "answer, or offline the store's recent customers (`offline: true`, `message` says so)",
                "parameters": [_TILL, {"name": "q", "in": "query", "required": True,
                                       "schema": {"type": "string", "minLength": 3, "maxLength": 120}}],
                "responses": {"200": {"description": "{customers: [{id, card (masked), name, tier, points}], "
                                                     "offline, message?}", "content": {"application/json": {}}},
                              **_errors(401, 403, 404, 409, 422, 503)}},
        "post": {"summary": "Enrol a customer at the hub (needs the hub) and attach them to the sale",
                 "parameters": [_TILL],
                 "requestBody": _body(["name"], name={"type": "string", "maxLength": 120},
                                      phone={"type": "string", "maxLength": 32},
                                      email={"type": "string", "maxLength": 254},
                                      request={"type": "string", "format": "uuid", "description": "the enrolment's "
                                               "id, made once and sent again with every retry of it: the hub "
                                               "enrols the customer once"}),
                 "responses": {"200": _STATE, **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503)}}},
    "/api/tills/{till}/customer": {
        "get": {"summary": "The attached customer's 360: points, tier, next tier, points expiring soon, recent "
                           "orders (offline: what the store's cache knows, said so)", "parameters": [_TILL],
                "responses": {"200": {"description": "{customer, loyalty, orders, offline}",
                                      "content": {"application/json": {}}}, **_errors(401, 403, 404, 409, 503)}},
        "put": {"summary": "Attach a customer (found or enrolled) to the sale; refused while their points pay part "
                           "of it", "parameters": [_TILL], "requestBody": _body(["customer"], customer=_UUID),
                "responses": {"200": _STATE, **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503)}},
        "delete": {"summary": "Detach the customer (refused while their points pay part of the sale)",
                   "parameters": [_TILL], "responses": {"200": _STATE, **_errors(401, 403, 404, 409, 503)}}},
    "/api/tills/{till}/returns/gift-card": {
        "post": {"summary": "In a return: put the part of the refund the sale paid by gift card back on the card "
                            "scanned, through the hub (once; offline refused: refund in cash instead)",
                 "parameters": [_TILL], "requestBody": _body(["card"], card={"type": "string", "maxLength": 40}),
                 "responses": {"200": _STATE, **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503)}}},
}
TENDER_METHODS = ["cash", "card", "qr", "points", "gift_card"]
TENDER_PROPERTIES: dict[str, Any] = {
    "card": {"type": "string", "maxLength": 40, "description": "gift_card only: the gift card's number (scanned or "
             "typed; never stored or shown whole)"}}
TENDER_SUMMARY = (" Or points: the attached customer's points, as many as whole points buy of amount_minor (online "
                  "through the hub; offline within the store's budget and the customer's cap of points not yet sent to the "
                  "hub). Or "
                  "gift_card: `card`, through the hub only (offline: 409 \"gift cards need the hub\").")
TILL_STATE_LOYALTY: dict[str, Any] = {
    "customer": {"type": ["object", "null"], "description": "the sale's customer: {id, card (masked), name, tier, "
                 "points (as last seen)}; null when none is attached"},
    "refund_points": {"type": ["object", "null"], "description": "in a return: the part of the refund given back to "
                      "the customer's points (whole points; return.completed v3), as money"},
    "refund_gift_card": {"type": ["object", "null"], "description": "in a return: the part of the refund that goes "
                         "back to the gift card the sale was paid with (scan the card: POST .../returns/gift-card), "
                         "as money"},
    "loyalty_reversals_owed": {"type": "integer", "description": "points and gift card redemptions given back (a "
                               "void) that the hub has not confirmed yet: asked again until it does"}}
