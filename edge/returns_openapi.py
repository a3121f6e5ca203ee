"""The OpenAPI paths of the returns routes (edge.api.returns), merged into edge.openapi's document."""

from __future__ import annotations

from typing import Any

from novapos.config.returns import CONDITIONS
from novapos.validators import MAX_BARCODE_LENGTH, MAX_LINE_QUANTITY

_ORDER = {"type": "string", "maxLength": 50,
          "description": "the sale's order id (its event id), or the receipt's QR text novapos:order:<id>"}
_ERR = {"description": "refused; `error` says why and what to do",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_TILL_PARAM = {"name": "till", "in": "path", "required": True, "schema": {"type": "string"}}
_OVERRIDE = {"type": "object", "required": ["login", "pin"], "description": "a manager's PIN override for this action",
             "properties": {"login": {"type": "string"}, "pin": {"type": "string"}}}
_STATE_OK = {"description": "the till's state, in return mode",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TillState"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _ERR for code in codes}


def _post(summary: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [_TILL_PARAM],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "properties": {**properties, "override": _OVERRIDE}}}}},
                     "responses": {"200": _STATE_OK, **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503)}}}


RETURNS_OPENAPI: dict[str, Any] = {
    "/api/tills/{till}/returns/lookup": {"get": {
        "summary": "A sale found by its receipt: this store's own (offline too), else the hub's (any store of the "
                   "tenant), with each line's line_no and what is still returnable; 404 with a sentence when unknown "
                   "or when the hub cannot be asked",
        "parameters": [_TILL_PARAM, {"name": "order", "in": "query", "required": True, "schema": _ORDER}],
        "responses": {"200": {"description": "the sale", "content": {"application/json": {}}},
                      **_errors(401, 403, 404, 422, 503)}}},
    "/api/tills/{till}/returns": _post(
        "Enter return mode: with the sale's order (needs till.refund: a cashier sends a manager's override), or "
        "no_receipt with a reason (a manager's override always; audited till.return_no_receipt). Then .../lines "
        "scans an exchange's new lines, .../tenders takes cash when the customer owes, .../complete settles "
        "(commits return.completed v1, v2 when refunded to a QR payment; prints one receipt), DELETE .../cart cancels",
        {"order": _ORDER, "no_receipt": {"type": "boolean"},
         "reason": {"type": "string", "minLength": 1, "maxLength": 500}}),
    "/api/tills/{till}/returns/lines": _post(
        "Take items back: original_line (1-based) of the sale with a receipt, or a barcode without one; quantity "
        f"1..{MAX_LINE_QUANTITY}; condition {' or '.join(CONDITIONS)} (the policy may refuse one). A line never "
        "gives back more than is still returnable (409)",
        {"original_line": {"type": "integer", "minimum": 1, "maximum": MAX_LINE_QUANTITY},
         "barcode": {"type": "string", "maxLength": MAX_BARCODE_LENGTH},
         "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_LINE_QUANTITY, "default": 1},
         "condition": {"enum": list(CONDITIONS), "default": "resaleable"}}),
    "/api/tills/{till}/returns/refund-in-cash": _post(
        "Refund in cash what the policy would give back to the sale's QR payment (refund_to qr): for when the hub "
        "is away (a refund to a QR payment goes through the hub). 409 when the refund goes elsewhere or is made",
        {}),
}
"""The returns routes' OpenAPI paths, merged into edge.openapi's document."""


_MONEY_OR_NULL = {"oneOf": [{"$ref": "#/components/schemas/Money"}, {"type": "null"}]}
RETURN_STATE: dict[str, Any] = {
    "mode": {"enum": ["sale", "return"], "description": "return: the till holds a return (and exchange) cart"},
    "original": {"type": ["object", "null"], "description": "return mode: the sale's order, store and lines (with "
                                                            "line_no and what is still returnable); null without a "
                                                            "receipt or while selling"},
    "returned": {"type": "array", "description": "the items taken back, as return.completed v1 `returned`"},
    "restocking_fee": _MONEY_OR_NULL, "refund": {**_MONEY_OR_NULL, "description": "what the store pays back"},
    "refund_to": {"enum": ["cash", "card", "qr", None],
                  "description": "where the refund goes (the store's policy; qr: the sale's QR payment, through the hub)"},
    "refund_card": {**_MONEY_OR_NULL, "description": "the part of the refund that goes back to the original card "
                                                     "(at most what it paid); the rest of `refund` is cash"},
}
"""The till state's return fields (TillState), present in either mode."""
