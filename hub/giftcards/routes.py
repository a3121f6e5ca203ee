"""The console's gift cards API: list and find cards, one card with its ledger, issue (the number shown once),
top up, block and unblock.

Everything needs gift_cards.manage (a gift card is money: who may see balances may move them). Every change is
audited in its transaction (gift_card.issued, gift_card.topped_up, gift_card.blocked, gift_card.unblocked). A card
is found by its number with a POST (a number never travels in a URL, where logs would keep it), or by its last
four digits. Another tenant's card is not found. `GET /api/gift-cards?unconfirmed=true` lists the redemptions and
refunds that no completed sale or return confirmed within a day (hub.giftcards.cards.unconfirmed), for a person.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console import keyset
from hub.console.context import Console
from hub.coupons.routes import limit_of, optional_time
from hub.giftcards import cards, numbers
from hub.identity.access import authorize, tenant_of
from hub.payments.requests import reason
from hub.refusals import Refused
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission

MAX_PAGE = 200
MAX_CARD_MINOR = 10**8
"""At most 1,000,000.00 on one card: a typo of a few zeros is refused rather than issued."""
LEDGER_SHOWN = 200
EXISTS = "SELECT 1 FROM gift_cards WHERE tenant = $1 AND id = $2"
LISTED = ("SELECT * FROM gift_cards WHERE tenant = $1 AND ($2::text IS NULL OR last4 = $2)"
          " AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4")


def _card_id(request: Request) -> uuid.UUID:
    raw = request.path_params["id"]
    try:
        return uuid.UUID(validators.uuid_text("id", raw))
    except validators.Invalid:
        raise ApiError(404, f"there is no gift card {validators.describe(raw)}") from None


def _last4(request: Request) -> str | None:
    raw = request.query_params.get("last4")
    if raw is None or raw == "":
        return None
    if not (len(raw) == 4 and raw.isascii() and raw.isdigit()):
        raise ApiError(400, "last4 must be the card's last four digits")
    return raw


def routes(console: Console) -> Sequence[BaseRoute]:
    def keyed() -> None:
        try:
            numbers.configured()  # without the hub's key no card can be found: say what to configure
        except Refused as exc:
            raise ApiError(exc.code, str(exc)) from None

    async def run(work: Any, *args: Any, status: int = 200, **kwargs: Any) -> Response:
        keyed()
        try:
            answer = await console.seam.run(functools.partial(work, **kwargs), console.ready_pool(), *args)
        except Refused as exc:
            raise ApiError(exc.code, str(exc)) from None
        if answer is None:
            raise ApiError(404, "there is no such gift card")
        return JSONResponse(answer, status_code=status)

    async def listed(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_GIFT_CARDS)
        tenant_of(principal, request.query_params.get("tenant"))
        keyed()
        if request.query_params.get("unconfirmed") is not None:
            if request.query_params["unconfirmed"] not in ("true", "1"):
                raise ApiError(400, "unconfirmed must be true: the cards whose ledger holds unconfirmed entries")
            return JSONResponse(await console.seam.run(cards.unconfirmed, console.ready_pool(), principal.tenant))
        limit, last4 = limit_of(request), _last4(request)
        after = keyset.after(request.query_params, "token")
        try:
            start = uuid.UUID(after[0]) if after else None
        except ValueError:
            raise ApiError(400, "after is not a cursor of this list: pass back the `next` of the previous page") \
                from None
        rows = await console.seam.run(_page, console.ready_pool(), principal.tenant, last4, start, limit)
        return JSONResponse(keyset.page(rows, limit, lambda item: (item["id"],)))

    async def issue(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_GIFT_CARDS)
        body = await json_body(request)
        amount = validators.minor_units("amount_minor", body.get("amount_minor"), minimum=1, maximum=MAX_CARD_MINOR)
        chosen = None if body.get("currency") is None else validators.currency("currency", body.get("currency"))
        customer = None if body.get("customer") is None else uuid.UUID(validators.uuid_text("customer",
                                                                                            body.get("customer")))
        expires_at = optional_time("expires_at", body.get("expires_at"))

        async def made(pool: asyncpg.Pool) -> dict[str, Any]:
            currency = chosen or await pool.fetchval("SELECT currency FROM tenants WHERE tenant = $1", principal.tenant)
            if customer is not None and not await pool.fetchval(
                    "SELECT 1 FROM customers WHERE tenant = $1 AND id = $2", principal.tenant, customer):
                raise Refused(422, "customer is not a customer of this tenant")
            number, card = await cards.issue(pool, principal.tenant, amount_minor=amount, currency=currency,
                                             expires_at=expires_at, customer=customer, actor=principal.login)
            return {"card": card, "number": numbers.grouped(number)}
        return await run(made, status=201)

    async def lookup(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_GIFT_CARDS)
        number = numbers.normalise("number", (await json_body(request)).get("number"))

        async def found(pool: asyncpg.Pool) -> dict[str, Any] | None:
            row = await pool.fetchrow("SELECT * FROM gift_cards WHERE tenant = $1 AND number_hash = $2",
                                      principal.tenant, await numbers.hashed(principal.tenant, number))
            return None if row is None else cards.card_json(row)
        return await run(found)

    async def one(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_GIFT_CARDS)
        return await run(_one, principal.tenant, _card_id(request))

    async def top_up(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_GIFT_CARDS)
        card_id = _card_id(request)
        if not await console.query(EXISTS, principal.tenant, card_id):
            raise ApiError(404, f"there is no gift card {card_id}")
        body = await json_body(request)
        return await run(cards.top_up, principal.tenant, card_id,
                         amount_minor=validators.minor_units("amount_minor", body.get("amount_minor"), minimum=1,
                                                             maximum=MAX_CARD_MINOR),
                         reason=reason("reason", body.get("reason")), actor=principal.login)

    def blocking(active: bool) -> Any:
        async def handle(request: Request) -> Response:
            principal = await authorize(console, request, Permission.MANAGE_GIFT_CARDS)
            card_id = _card_id(request)
            if not await console.query(EXISTS, principal.tenant, card_id):
                raise ApiError(404, f"there is no gift card {card_id}")
            why = reason("reason", (await json_body(request)).get("reason"))
            if not why:
                raise validators.Invalid("reason", "is needed: say why")
            return await run(cards.set_active, principal.tenant, card_id, active=active, reason=why,
                             actor=principal.login)
        return handle

    return [route("/api/gift-cards", GET=listed, POST=issue),
            route("/api/gift-card-lookups", POST=lookup),
            route("/api/gift-cards/{id}", GET=one),
            route("/api/gift-cards/{id}/top-ups", POST=top_up),
            route("/api/gift-cards/{id}/block", POST=blocking(False)),
            route("/api/gift-cards/{id}/unblock", POST=blocking(True))]


async def _page(pool: asyncpg.Pool, tenant: str, last4: str | None, after: uuid.UUID | None,
                limit: int) -> list[dict[str, Any]]:
    return [cards.card_json(row) for row in await pool.fetch(LISTED, tenant, last4, after, limit + 1)]


async def _one(pool: asyncpg.Pool, tenant: str, card_id: uuid.UUID) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        card = await conn.fetchrow("SELECT * FROM gift_cards WHERE tenant = $1 AND id = $2", tenant, card_id)
        if card is None:
            return None
        ledger = await conn.fetch("SELECT * FROM gift_card_ledger WHERE tenant = $1 AND card = $2 ORDER BY id DESC"
                                  " LIMIT $3", tenant, card_id, LEDGER_SHOWN)
    return {"card": cards.card_json(card), "ledger": [cards.entry_json(entry) for entry in ledger]}


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_CARD = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/GiftCard"}}}}
_AMOUNT = {"type": "integer", "minimum": 1, "maximum": MAX_CARD_MINOR}
_REASON_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["reason"], "properties": {"reason": {"type": "string",
                                                                        "maxLength": validators.MAX_TEXT_LENGTH}}}}}}
_CHANGED = {"200": {"description": "the card now", **_CARD},
            "404": {"description": "no such card", "content": _ERROR},
            "409": {"description": "the card is blocked", "content": _ERROR},
            "422": {"description": "a field is out of bounds; the error says which", "content": _ERROR}}
OPENAPI: dict[str, Any] = {"paths": {
    "/api/gift-cards": {
        "get": {"summary": "Gift cards (masked), by id, a keyset page at a time", "parameters": [
            {"name": "last4", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[0-9]{4}$"}},
            keyset.parameter("id"),
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}}],
                "responses": {"200": {"description": "a page of cards", "content": {"application/json": {
                    "schema": keyset.schema("GiftCard", MAX_PAGE)}}},
                    "400": {"description": "a bad filter, limit or cursor", "content": _ERROR}}},
        "post": {"summary": "Issue a card holding amount_minor (the tenant's currency unless given); its number is "
                            "in this answer only; audited",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["amount_minor"], "properties": {
                         "amount_minor": _AMOUNT, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                         "expires_at": {"type": ["string", "null"], "format": "date-time"},
                         "customer": {"type": ["string", "null"], "format": "uuid"}}}}}},
                 "responses": {"201": {"description": "the card and its number (19 digits, grouped by four)",
                                       "content": {"application/json": {"schema": {
                                           "type": "object", "required": ["card", "number"], "properties": {
                                               "card": {"$ref": "#/components/schemas/GiftCard"},
                                               "number": {"type": "string"}}}}}},
                               "422": {"description": "a field is out of bounds", "content": _ERROR}}}},
    "/api/gift-card-lookups": {"post": {
        "summary": "Find a card by its number (in the body, never a URL)", "requestBody": {
            "required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["number"], "properties": {"number": {"type": "string"}}}}}},
        "responses": {"200": {"description": "the card", **_CARD},
                      "404": {"description": "no card has this number", "content": _ERROR},
                      "422": {"description": "not a gift card number", "content": _ERROR}}}},
    "/api/gift-cards/{id}": {"get": {
        "summary": "One card with its ledger, newest first", "parameters": [_ID],
        "responses": {"200": {"description": "the card and its ledger", "content": {"application/json": {"schema": {
            "type": "object", "required": ["card", "ledger"], "properties": {
                "card": {"$ref": "#/components/schemas/GiftCard"},
                "ledger": {"type": "array", "items": {"type": "object"}}}}}}},
            "404": {"description": "no such card", "content": _ERROR}}}},
    "/api/gift-cards/{id}/top-ups": {"post": {
        "summary": "Add money to an active card; audited", "parameters": [_ID], "requestBody": {
            "required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["amount_minor"], "properties": {
                    "amount_minor": _AMOUNT, "reason": {"type": "string"}}}}}},
        "responses": _CHANGED}},
    "/api/gift-cards/{id}/block": {"post": {"summary": "Block a card (lost, stolen): nothing can be taken from it; "
                                                       "audited", "parameters": [_ID], "requestBody": _REASON_BODY,
                                            "responses": _CHANGED}},
    "/api/gift-cards/{id}/unblock": {"post": {"summary": "Unblock a card; audited", "parameters": [_ID],
                                              "requestBody": _REASON_BODY, "responses": _CHANGED}}},
    "schemas": {"GiftCard": {"type": "object", "required": ["id", "card", "currency", "balance_minor", "active"],
                             "properties": {"id": {"type": "string", "format": "uuid"},
                                            "card": {"type": "string", "description": "masked: **** and the last 4"},
                                            "last4": {"type": "string"}, "currency": {"type": "string"},
                                            "balance_minor": {"type": "integer"}, "active": {"type": "boolean"},
                                            "expires_at": {"type": ["string", "null"]},
                                            "customer": {"type": ["string", "null"]}}}}}
