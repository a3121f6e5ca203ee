"""The OpenAPI 3.1 description of the edge's HTTP API, served at /openapi.json.

Every bound here is the validators' own constant, so the document says exactly what the door enforces.
"""

from __future__ import annotations

from typing import Any

from actors.till.cart import Stage
from actors.till.tenders import STATES as TENDER_STATES
from edge.api.card_follow_ups import FOLLOW_UPS_OPENAPI
from edge.loyalty_openapi import (
    LOYALTY_OPENAPI,
    TENDER_METHODS,
    TENDER_PROPERTIES,
    TENDER_SUMMARY,
    TILL_STATE_LOYALTY,
)
from edge.returns_openapi import RETURN_STATE, RETURNS_OPENAPI
from novapos.adapters.http import MAX_BODY_BYTES
from novapos.pricing import BASIS_POINTS
from novapos.validators import (
    CURRENCY_PATTERN,
    MAX_BARCODE_LENGTH,
    MAX_LINE_QUANTITY,
    MAX_MINOR,
    MAX_TEXT_LENGTH,
    MAX_TOKEN_LENGTH,
    TOKEN_PATTERN,
)
from novapos.wire.stock import LOCATION_KINDS

_TOKEN = {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_LENGTH, "pattern": f"^{TOKEN_PATTERN}$"}
_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH,
         "description": "printable text: no control characters, no lone surrogates"}
_MONEY = {"type": "object", "required": ["minor", "currency"],
          "properties": {"minor": {"type": "integer", "minimum": 0, "maximum": MAX_MINOR,
                                   "description": "minor units (cents)"},
                         "currency": {"type": "string", "pattern": f"^{CURRENCY_PATTERN}$"}}}
_ERROR = {"description": "refused; `error` says why and what to do",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_STATE = {"description": "the till's state after the request",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TillState"}}}}
_TILL = {"name": "till", "in": "path", "required": True, "schema": _TOKEN}
_SKU = {"name": "sku", "in": "path", "required": True, "schema": _TOKEN}
_LINE = {"name": "line", "in": "path", "required": True,
         "description": "the line's id (`line` in the till state); while a return is open, DELETE takes the SKU of "
                        "an item taken back or of a new line", "schema": _TOKEN}
_OVERRIDE = {"type": "object", "required": ["login", "pin"], "description": "a manager's PIN for this one action",
             "properties": {"login": _TEXT, "pin": {"type": "string", "pattern": "^[0-9]{4,12}$"}}}
_DISCOUNT = {"type": "object", "required": ["kind", "value", "reason"], "properties": {
    "kind": {"type": "string", "enum": ["percent", "amount"]},
    "value": {"type": "integer", "minimum": 1, "maximum": MAX_MINOR,
              "description": f"percent: basis points, 1 to {BASIS_POINTS} (100 %); amount: minor units"},
    "reason": _TEXT, "override": _OVERRIDE}}
_TENDER = {"name": "tender", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
           "description": "a tender's id from the till state's tenders"}
_COUPON = {"name": "code", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64},
           "description": "a coupon code on the sale (the till state's coupons[].code)"}
_AUTH = (401, 403)  # nobody logged in at the till; the role may not (the answer names the roles that may)
_ASKS = (401, 404, 423, 503)  # every till request: no login (or a wrong PIN); no such till; locked; not answered
_PIN = {"type": "string", "minLength": 1, "maxLength": 32, "pattern": "^[0-9]+$"}
_WRITES = (403, 409, 415)  # another origin; refused in the till's state; not application/json
_BODIES = (400, 413, 422)  # not a JSON object; more than MAX_BODY_BYTES; a value out of bounds


def _json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _ERROR for code in sorted(codes)}


def _post(summary: str, body: dict[str, Any], ok: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "parameters": [_TILL],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": ok, **_errors(*_ASKS, *_WRITES, *_BODIES)}}


def _delete(summary: str, *more: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "parameters": [_TILL, *more],
            "responses": {"200": _STATE, **_errors(*_ASKS, *_WRITES)}}


def _signed(operation: dict[str, Any], *more: dict[str, Any]) -> dict[str, Any]:
    """An operation that asks who is logged in at the till (401) and whether their role may (403)."""
    return {**operation, "parameters": [*operation["parameters"], *more],
            "responses": {**operation["responses"], "401": {**_ERROR, "description": "nobody is logged in at the till"},
                          "403": {**_ERROR, "description": "another origin, or the user's role may not (and no "
                                                           "manager's override allowed it)"}}}


def _void(summary: str, *more: dict[str, Any]) -> dict[str, Any]:
    """A void: a DELETE whose optional body carries a manager's override."""
    return _signed({**_delete(summary, *more), "requestBody": {"required": False, "content": {"application/json": {
        "schema": _object([], override=_OVERRIDE)}}}})


def _read(summary: str, ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": ok, **_errors(*errors)}}}


def _with_401(operation: dict[str, Any]) -> dict[str, Any]:
    """An operation that needs the till's login: 401 without it (403: the role may not)."""
    operation["responses"]["401"] = _ERROR
    return operation


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_WHOAMI = _object(["till", "login", "name", "roles", "session", "offline", "locked"], till=_TOKEN, login=_TOKEN,
                  name=_TEXT, roles={"type": "array", "items": {"type": "string"}}, session={"type": "string"},
                  offline={"type": "boolean", "description": "the hub has not confirmed the staff list lately"},
                  locked={"type": "boolean", "description": "the screen is locked: only this user's PIN unlocks it"})
_COUNT = {"type": "object", "maxProperties": 40, "description": "a count by denomination: {minor units of a note or "
           "coin of the store's currency ([cash] denominations): pieces}, pieces 0..100000; unknown denominations "
           "and negative counts are refused",
           "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100_000},
           "propertyNames": {"pattern": "^[0-9]{1,13}$"}}
_OVERRIDE = {"type": "object", "required": ["login", "pin"], "description": "a manager's PIN for this one action",
             "properties": {"login": _TOKEN, "pin": {"type": "string"}}}
_REASON = {**_TEXT, "maxLength": 200}
_ASKED = (401, 403)  # nobody logged in at the till; the user's role may not (the answer names who may)


def drawer_paths() -> dict[str, Any]:
    """The till's drawer session (edge.api.drawer): float, moves, no-sale, X report, blind close -> Z report."""
    session = _json("the till's drawer_session ({id, opened_at, opened_by} or null) and has_drawer")
    report = {"description": "an X report: sales, returns, tenders and refunds per method (card per scheme), "
                             "change, discounts, voids, no-sales, pay-ins/outs, drops, tax per rate, float, expected "
                             "cash", "content": {"application/json": {}}}

    def post(summary: str, body: dict[str, Any], ok: dict[str, Any]) -> dict[str, Any]:
        document = _post(summary, body, ok)
        document["responses"].update(_errors(*_ASKED))
        return document
    base = "/api/tills/{till}/drawer-session"
    return {
        base: {"get": {"summary": "The till's open drawer session (no expected amount: the close is blind)",
                       "parameters": [_TILL], "responses": {"200": session, **_errors(*_ASKS, *_ASKED)}},
               "post": post("Open a drawer session with its float counted by denomination (one per till)",
                            _object(["float"], float=_COUNT), _STATE)},
        f"{base}/moves": {"post": post(
            "A pay-in, pay-out or cash drop with its reason (till.cash_moves, or a manager's override); audited; "
            "a pay-out or drop beyond the cash the drawer should hold is refused",
            _object(["kind", "amount_minor", "reason"], kind={"type": "string", "enum": ["pay_in", "pay_out", "drop"]},
                    amount_minor={"type": "integer", "minimum": 1, "maximum": MAX_MINOR}, reason=_REASON,
                    override=_OVERRIDE), _STATE)},
        f"{base}/no-sale": {"post": post(
            "Open the drawer without a sale (till.no_sale, or a manager's override): counted, audited, pulsed",
            _object([], reason=_REASON, override=_OVERRIDE), _STATE)},
        f"{base}/x-report": {"get": {"summary": "The X report of the open session (mid-shift; nothing resets)",
                                     "parameters": [_TILL], "responses": {"200": report, **_errors(*_ASKS, *_ASKED, 409)}}},
        f"{base}/x-report/print": {"post": post("Print the X report on the till's printer", _object([]),
                                                {**report, "description": "the X report and its print_job id"})},
        f"{base}/close": {"post": post(
            "Close the session with a blind count: refused while a sale is open; over or short beyond the store's "
            "tolerance only with a manager's override (audited drawer.close_over_tolerance). The Z report is "
            "committed, printed and sent to the hub",
            _object(["counted"], counted=_COUNT, override=_OVERRIDE),
            _json("the Z report: the drawer.closed body (counted, expected, difference, approver, z figures and "
                  "number) with its event id and seq"))},
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "NovaPOS store edge: till API", "version": "1",
                 "description": "Log in with a PIN, scan lines, take cash, complete. Every /api/ route but "
                                "/api/store and .../login needs the login's cookie (401 without it, 423 while the "
                                "till is locked); a till's routes need that till's own cookie. A completed sale is "
                                "on disk before the answer; completing the same cart again returns the same receipt. "
                                "Requests that change anything are application/json, from this server's own "
                                f"origin, of at most {MAX_BODY_BYTES} bytes; every error is JSON {{error}}."},
        "paths": {
            **RETURNS_OPENAPI, **FOLLOW_UPS_OPENAPI, **LOYALTY_OPENAPI,
            "/api/tills/{till}": {"get": {"summary": "Till state: session, cart lines, total, tendered, due",
                                          "parameters": [_TILL], "responses": {"200": _STATE, **_errors(*_ASKS)}}},
            "/api/tills/{till}/login": {"post": _post(
                "Log in with a PIN (no cookie needed): sets the till's HttpOnly SameSite=Strict cookie "
                "novapos_till_<till>, replaces whoever was logged in at the till (the cart stays). 401 wrong login "
                "or PIN (counts toward a lockout), 423 locked out (with until when), 403 the till has been away from "
                "the hub past [login] offline_grace_s",
                _object(["login", "pin"], login={**_TEXT, "maxLength": 64}, pin=_PIN), _STATE)},
            "/api/tills/{till}/logout": {"post": _post(
                "End the login (allowed while locked); the open cart stays with the till for the next login",
                _object([]), _STATE)},
            "/api/tills/{till}/lock": {"post": _post(
                "Lock the screen: the login stays, every till request is 423 until unlocked", _object([]),
                {"description": "who is logged in", "content": {"application/json": {"schema": _WHOAMI}}})},
            "/api/tills/{till}/unlock": {"post": _post(
                "Unlock with the logged-in user's own PIN (a wrong one counts toward their lockout)",
                _object(["pin"], pin=_PIN),
                {"description": "who is logged in", "content": {"application/json": {"schema": _WHOAMI}}})},
            "/api/tills/{till}/whoami": {"get": {
                "summary": "Who is logged in at this till with this device's cookie, and whether the till is offline",
                "parameters": [_TILL], "responses": {"200": {"description": "who is logged in", "content": {
                    "application/json": {"schema": _WHOAMI}}}, **_errors(*_ASKS)}}},
            "/api/tills/{till}/lines": {"post": _post("Add a line by barcode", _object(
                ["barcode"], barcode={**_TEXT, "maxLength": MAX_BARCODE_LENGTH},
                quantity={"type": "integer", "minimum": 1, "maximum": MAX_LINE_QUANTITY, "default": 1}), _STATE)},
            "/api/tills/{till}/lines/{line}": {
                "patch": _signed(_post("Set a line's quantity (before any tender)", _object(
                    ["quantity"], quantity={"type": "integer", "minimum": 1, "maximum": MAX_LINE_QUANTITY}), _STATE),
                    _LINE),
                "delete": _signed(_delete("Remove a line from the cart by its id (before any tender)", _LINE))},
            "/api/tills/{till}/lines/{line}/price": {"post": _signed(_post(
                "Override a line's unit price, with a reason (till.override: a cashier needs a manager's PIN in "
                "`override`); audited as till.price_override with the old and new price", _object(
                    ["unit_minor", "reason"], unit_minor={"type": "integer", "minimum": 0, "maximum": MAX_MINOR},
                    reason=_TEXT, override=_OVERRIDE), _STATE), _LINE)},
            "/api/tills/{till}/lines/{line}/discount": {
                "post": _signed(_post("Discount a line, percent or amount, with a reason (till.discount, or a "
                                      "manager's PIN); at most 100 % and at most the line's amount; audited as "
                                      "till.discount", _DISCOUNT, _STATE), _LINE),
                "delete": _signed(_delete("Take a line's discount off", _LINE))},
            "/api/tills/{till}/discount": {
                "post": _signed(_post("Discount the whole order, percent or amount, with a reason (till.discount, or "
                                      "a manager's PIN); shared over the lines by the largest remainder; audited as "
                                      "till.discount", _DISCOUNT, _STATE)),
                "delete": _signed(_delete("Take the order discount off"))},
            "/api/tills/{till}/cart": {"delete": _void(
                "Void the cart: its lines and tenders go (cash back, approved cards reversed at the terminal), a "
                "new cart begins; nothing is sold. Once tendering began it needs till.override (or `override`)")},
            "/api/tills/{till}/tenders": {
                "post": _signed(_post("Take a tender: cash (change up to the store's max_change_minor), or a card "
                                      "for at most what is due, run at the till's terminal; the card's stage shows "
                                      "in tenders[] until it is approved, declined, cancelled or failed. Or qr: the "
                                      "hub makes a QR payment of at most what is due, pending in tenders[] with "
                                      "qr.pay_url (the page shows .../tenders/{tender}/qr.svg) until the customer's "
                                      "phone pays (approved), it fails (declined), or it is cancelled or expires; "
                                      "QR needs the hub (offline: 409 with a sentence, nothing started)."
                                      + TENDER_SUMMARY, _object(
                    ["amount_minor"], method={"type": "string", "enum": TENDER_METHODS, "default": "cash"},
                    **TENDER_PROPERTIES,
                    amount_minor={"type": "integer", "minimum": 1, "maximum": MAX_MINOR},
                    id={"type": "string", "format": "uuid",
                        "description": "the client's id for this tender (required for a card or a QR payment: it "
                                       "names the payment at the terminal or the hub): sent again, it takes the "
                                       "money once and answers the till's state"}), _STATE)),
                "delete": _void("Void the cart's tenders: cash back, approved cards reversed at the terminal "
                                "(needs till.override or `override`)")},
            "/api/tills/{till}/tenders/{tender}": {"delete": _void(
                "Give back one approved tender: cash by hand, a card reversed at the terminal (owed and retried "
                "until it is); needs till.override or `override`", _TENDER)},
            "/api/tills/{till}/tenders/{tender}/qr.svg": {"get": _signed({
                "summary": "A pending QR payment's pay URL as an SVG QR code, for the customer's phone to scan",
                "parameters": [_TILL, _TENDER],
                "responses": {"200": {"description": "the QR code", "content": {"image/svg+xml": {}}},
                              **_errors(*_ASKS)}})},
            "/api/tills/{till}/tenders/{tender}/cancel": {"post": _signed(_post(
                "Cancel a card payment still waiting for the card (the customer's cancel); one already processing "
                "is not cut short. A pending QR payment is cancelled at the hub (a customer who paid meanwhile "
                "leaves it approved)", _object([]), _STATE), _TENDER)},
            "/api/tills/{till}/coupons": {"post": _signed(_post(
                "Enter a coupon code for the sale: reserved at the hub (404 unknown, 409 used up, expired or the "
                "customer's limit reached); offline only a promotion's public code is accepted (a hub code is 409 "
                "with a sentence). Its promotion applies from now on when its rules allow; the till state's coupons[] "
                "says whether it does", _object(["code"], code={"type": "string", "minLength": 1, "maxLength": 64}),
                _STATE))},
            "/api/tills/{till}/coupons/{code}": {"delete": _signed(_delete(
                "Take a coupon off the sale: its reservation is released at the hub (owed until the hub confirms)",
                _COUPON))},
            "/api/tills/{till}/complete": {"post": _post(
                "Complete the sale (durably committed before the answer)",
                _object([], cart={"type": "string", "format": "uuid",
                                  "description": "the till's own cart id from its state; makes retries safe"}),
                {"description": "the receipt", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Receipt"}}}})},
            "/api/tills/{till}/drawer": {"post": _post(
                "Open the drawer a cash sale still owes (its pulse was lost to a restart); once, logged and counted",
                _object(["sale"], sale={"type": "string", "format": "uuid",
                                        "description": "the sale id in the till state's drawer_owed"}), _STATE)},
            "/api/tills/{till}/receipts/last": {"get": {
                "summary": "The till's last receipt (sale or return) as a reprint would print it, and how its print "
                           "job went (state printed|queued|failed, attempts, reason); the signed-in user's role must "
                           "allow selling",
                "parameters": [_TILL], "responses": {"200": _json("order, seq, kind, printer, state, document"),
                                                     **_errors(401, 403, 409, *_ASKS)}}},
            "/api/tills/{till}/receipts/last/print": {"post": {
                "summary": "Print the till's last receipt again after a printer fault, marked REPRINT - COPY; audited "
                           "(till.reprint with the order id) before it is queued; the signed-in user's role must "
                           "allow selling",
                "parameters": [_TILL],
                "requestBody": {"required": False, "content": {"application/json": {"schema": _object([])}}},
                "responses": {"200": _json("order, seq, kind, printer and the copy's print job id"),
                              **_errors(401, *_ASKS, *_WRITES, 400, 413)}}},
            **drawer_paths(),
            "/api/stock/{sku}": {"get": {
                "summary": "An item's stock here and nearby as the hub knows it, or \"not known while offline\" "
                           "(within about a second, never an error) with the last answer this store had",
                "parameters": [_SKU],
                "responses": {"200": {"description": "status known, refused or offline; what the till shows",
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/Stock"}}}}, **_errors(401, 422)}}},
            "/api/products": {"get": {
                "summary": "The store's products from its local catalog, a page at a time, with the price in force "
                           "now and the tax rule; `next` is the `after` of the following page (null at the end)",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {**_TEXT, "maxLength": MAX_BARCODE_LENGTH},
                     "description": "a SKU or barcode prefix, or part of the name"},
                    {"name": "after", "in": "query", "schema": _TOKEN, "description": "the last SKU of the page before"},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}],
                "responses": {"200": _json("products"), **_errors(401, 422)}}},
            "/api/store": _read("Tenant, store and tills; the currency and the notes and coins a drawer is counted in "
                                "(minor units)", _json("store")),
            "/static/{name}": {"get": {
                "summary": "The web till's stylesheet and script (the page at / loads them; nothing else is served)",
                "parameters": [{"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string", "enum": ["till.css", "till.js"]}}],
                "responses": {"200": {"description": "the file", "content": {"text/css": {}, "text/javascript": {}}},
                              **_errors(404)}}},
            "/api/tills/{till}/kpis": {"post": _with_401(_post(
                "Report a completed sale's checkout latency (first scan to completion, ms) and taps, as the web "
                "till measured them; once per cart, within 10 minutes of its sale (edge.api.kpis)",
                _object(["cart", "latency_ms", "taps"],
                        cart={"type": "string", "format": "uuid", "description": "the completed cart's id"},
                        latency_ms={"type": "integer", "minimum": 0, "maximum": 3_600_000,
                                    "description": "at most the cart's life on the server plus 5 s"},
                        taps={"type": "integer", "minimum": 1, "maximum": 500}),
                _json("{recorded: bool}; false when that cart was reported already")))},
            "/api/devices": _read("Each device's status (plugged, ready, paper, faults)", _json("devices"), 401, 503),
            "/api/print-jobs": _read("Receipts waiting for or sent to a printer", _json("print jobs"), 401, 503),
            "/api/events": _read("Server-sent events: device status and till state as they change (any till's "
                                 "login cookie)",
                                 {"description": "an event stream", "content": {"text/event-stream": {}}}, 401),
            "/healthz": _read("200 while the store can sell: status ok, or degraded when the hub link is down "
                              "(outbox depth and oldest unsent age say what waits) or NATS refuses or denies the "
                              "store's credentials (`nats`, `nats_problem` say which and what to do); 503 when it "
                              "cannot sell. catalog_version: the catalog the tills sell from; catalog_sync: following "
                              "the hub's, or offline; staff_version, staff_age_s, staff_people: the staff list the "
                              "till logins use, seconds since the hub last confirmed it, how many people it holds; "
                              "logins_offline: logins now are offline (that confirmation older than [login] "
                              "offline_after_s); with a leaf node, leaf_unsourced_events: events on it the hub has "
                              "not sourced yet, leaf_hub_answered_s_ago, and leaf_problem (degraded) once they "
                              "have waited over a minute",
                              _json("health"), 503),
            "/metrics": _read("Prometheus metrics", {"description": "text",
                                                     "content": {"text/plain": {}}}),
            "/openapi.json": _read("This document", _json("OpenAPI 3.1")),
        },
        "components": {"schemas": {
            "Money": _MONEY,
            "Error": _object(["error"], error={"type": "string"}),
            "Line": {"type": "object", "description": "a sale.completed v5 line (v3 without promotions)", "properties": {
                "line": {"type": "string", "description": "the line's id in its cart"},
                "sku": _TOKEN, "name": _TEXT, "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_LINE_QUANTITY},
                "attributes": {"type": "array", "maxItems": 3, "description": "the variant's [name, value] pairs",
                               "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": _TEXT}},
                "list_price": {"$ref": "#/components/schemas/Money"},
                "unit_price": {"$ref": "#/components/schemas/Money"},
                "promotions": {"type": "array", "description": "what each promotion took off the line, before its "
                               "discount: [{promotion, name, amount}]", "items": {"type": "object"}},
                "override": {"type": "object", "description": "present when unit_price is not the list price",
                             "properties": {"reason": _TEXT, "approver": _TOKEN}},
                "discount": {"type": "object", "description": "the line's discount, when it has one",
                             "properties": {"kind": {"type": "string"}, "value": {"type": "integer"}, "reason": _TEXT,
                                            "amount": {"$ref": "#/components/schemas/Money"}}},
                "order_discount": {"$ref": "#/components/schemas/Money"},
                "amount": {"$ref": "#/components/schemas/Money"},
                "catalog_version": {"type": "integer", "description": "the catalog version the price was locked at"},
                "tax": {"type": "object", "description": "the line's tax rule and amount (novapos.pricing's rounding)",
                        "properties": {"class": _TOKEN, "rate_ppm": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
                                       "included": {"type": "boolean", "description": "in the shelf price, or added"},
                                       "amount": {"$ref": "#/components/schemas/Money"}}}}},
            "TillState": {"type": "object", "properties": {
                "till": _TOKEN, "session": {
                    "type": ["object", "null"], "description": "who is logged in at the till (null: nobody)",
                    "properties": {"id": {"type": "string", "format": "uuid"}, "cashier": {"type": "string"},
                                   "name": _TEXT, "roles": {"type": "array", "items": {"type": "string"}},
                                   "offline": {"type": "boolean", "description": "logged in while offline"}}},
                "cart": {"type": "string", "format": "uuid"},
                "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                "order_discount": {"type": ["object", "null"], "description": "{kind, value, reason, amount}"},
                "promotions": {"type": "array", "description": "the promotions applied to the cart at its last change "
                               "{promotion, name, explanation, amount}; each line's promotions[] says what each took "
                               "off it", "items": {"type": "object"}},
                "promotions_version": {"type": "integer", "description": "the catalog version of the store's copy "
                                       "of the promotions the cart was priced with"},
                "coupons": {"type": "array", "description": "the coupons on the sale {code, promotion, redemption, "
                            "offline, applied}", "items": {"type": "object"}},
                "saved": {"$ref": "#/components/schemas/Money", "description": "You saved: promotions and discounts"},
                "coupon_releases_owed": {"type": "integer", "description": "coupon reservations of voided carts (or "
                                         "coupons taken off) the hub has not confirmed released yet (retried)"},
                "stage": {"type": "string", "enum": [stage.value for stage in Stage],
                          "description": "scanning; paying (cash taken: lines frozen); saving (being committed)"},
                "total": {"$ref": "#/components/schemas/Money"}, "tendered": {"$ref": "#/components/schemas/Money"},
                "tax_total": {"$ref": "#/components/schemas/Money"},
                "due": {"$ref": "#/components/schemas/Money"}, "change": {"$ref": "#/components/schemas/Money"},
                "drawer_owed": {"type": ["string", "null"], "format": "uuid",
                                "description": "a cash sale whose drawer did not open: POST .../drawer opens it once"},
                "drawer_session": {"type": ["object", "null"], "description": "the open drawer session {id, opened_at "
                                   "(ms), opened_by}, or null (POST .../drawer-session opens one)"},
                **RETURN_STATE,
                "paid": {"$ref": "#/components/schemas/Money"},
                "tenders": {"type": "array", "items": {"$ref": "#/components/schemas/Tender"}},
                "card_reversals": {"type": "array", "description": "approved cards of abandoned sales, owed back "
                                   "to the customer until the terminal confirms the reversal (retried)",
                                   "items": {"type": "object"}}, **TILL_STATE_LOYALTY}},
            "Tender": {"type": "object", "properties": {
                "id": {"type": "string", "format": "uuid"},
                "method": {"type": "string", "enum": TENDER_METHODS},
                "amount": {"$ref": "#/components/schemas/Money"},
                "state": {"type": "string", "enum": list(TENDER_STATES)},
                "stage": {"type": ["string", "null"], "description": "while pending: starting, waiting_for_card "
                          "(\"insert or tap card\"), processing, unreachable (the terminal is not answering); "
                          "waiting_for_phone (a QR payment)"},
                "message": {"type": "string", "description": "what to tell the cashier"},
                "card": {"type": ["object", "null"], "properties": {"scheme": {"type": "string"},
                                                                     "masked": {"type": "string"},
                                                                     "auth_code": {"type": "string"}}},
                "qr": {"type": "object", "description": "a QR payment (method qr) only", "properties": {
                    "provider_ref": {"type": "string", "description": "the provider's reference of the payment"},
                    "pay_url": {"type": ["string", "null"], "description": "while pending: what the QR code holds"},
                    "expires_at": {"type": ["string", "null"], "description": "while pending: when the code expires "
                                   "at the hub (ISO 8601)"}}}}},
            "StockAt": {"type": "object", "properties": {
                "location": _TOKEN, "name": _TEXT, "kind": {"type": "string", "enum": list(LOCATION_KINDS)},
                "store": {"type": ["string", "null"]},
                "own": {"type": "boolean", "description": "this store's own location (else nearby: same region)"},
                "on_hand": {"type": "integer"}, "reserved": {"type": "integer"}, "available": {"type": "integer"}}},
            "Stock": {"type": "object", "properties": {
                "sku": _TOKEN, "status": {"type": "string", "enum": ["known", "refused", "offline"]},
                "message": {"type": "string", "description": "a sentence the till can show as it is"},
                "in_catalog": {"type": ["boolean", "null"], "description": "null while offline"},
                "as_of": {"type": ["string", "null"], "format": "date-time"},
                "locations": {"type": "array", "items": {"$ref": "#/components/schemas/StockAt"}},
                "last_known": {"type": ["object", "null"], "description": "offline: the last answer and its time",
                               "properties": {"as_of": {"type": "string", "format": "date-time"}, "locations": {
                                   "type": "array", "items": {"$ref": "#/components/schemas/StockAt"}}}}}},
            "Receipt": {"type": "object", "properties": {
                "sale": {"type": "string", "description": "event id (UUIDv7)"},
                "seq": {"type": "integer", "description": "the store's sequence number"},
                "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                "total": {"$ref": "#/components/schemas/Money"}, "tax_total": {"$ref": "#/components/schemas/Money"},
                "change": {"$ref": "#/components/schemas/Money"}}},
        }},
    }
