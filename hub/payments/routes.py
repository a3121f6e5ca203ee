"""The console's payments API: payment intents (list, one with its refunds, create), the person's capture, void
and refund through the provider, and the tenant's offline card limits.

Reading needs VIEW_PAYMENTS where the intent's store is; changing needs MANAGE_PAYMENTS there (the offline limits:
across the tenant). Another tenant's intent is not found. A change the intent's state does not allow is 409
{"error", "code": "invalid_state_transition", "state"}; a provider that is not configured or cannot be reached is
503 with nothing done; an answer that waits for the provider (it did not answer in time) is 202 with the intent
still `processing`, which the watchdog resolves. A change sent with an Idempotency-Key header is done once: the
same key again answers the first answer (hub.payments.idempotency). Captures, voids, refunds and limit changes are
audited with the person who made them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.console import keyset
from hub.console.context import Console
from hub.identity.access import authorize, tenant_of
from hub.identity.principal import Principal
from hub.payments import idempotency, intents, offline_limits, provider
from hub.payments.intents import Intent
from hub.payments.model import Refused, State
from hub.payments.offline_limits import OfflineLimits
from hub.payments.requests import reason, refusal
from hub.payments.service import Conflict, Declined, NoProvider, NotFound, Payments, declined
from novapos import validators
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission

MAX_PAGE = 200
MAX_LIMIT_MINOR = 10**9
LISTED = (
    "SELECT * FROM payment_intents WHERE tenant = $1 AND ($2::text[] IS NULL OR store = ANY($2))"
    " AND ($3::text IS NULL OR state = $3) AND ($4::boolean IS NULL OR (attention IS NOT NULL) = $4)"
    " AND ($5::uuid IS NULL OR id < $5) ORDER BY id DESC LIMIT $6")
REFUNDS = ("SELECT refund_key, amount_minor, state, via, provider_ref, reason, actor, created_at FROM payment_refunds"
           " WHERE intent_id = $1 ORDER BY created_at, id")
STORE_EXISTS = "SELECT EXISTS (SELECT 1 FROM stores WHERE tenant = $1 AND store = $2) AS found"

Act = Callable[[Payments], Awaitable[tuple[Intent, dict[str, Any]]]]


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(validators.uuid_text("id", raw))
    except validators.Invalid:
        raise ApiError(404, f"there is no payment {validators.describe(raw)}") from None


def _query_store(raw: str) -> str:
    try:
        return validators.token("store", raw)
    except validators.Invalid:
        raise ApiError(404, "there is no such store") from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_PAGE):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _state(request: Request) -> str | None:
    raw = request.query_params.get("state")
    if raw is None:
        return None
    if raw not in {str(state) for state in State}:
        raise ApiError(400, f"state must be one of {', '.join(State)}, not {validators.describe(raw)}")
    return raw


def _attention(request: Request) -> bool | None:
    raw = request.query_params.get("attention")
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise ApiError(400, "attention must be true or false")
    return raw == "true"


def _after(request: Request) -> uuid.UUID | None:
    after = keyset.after(request.query_params, "token")
    if after is None:
        return None
    try:
        return uuid.UUID(validators.uuid_text("after", after[0]))
    except validators.Invalid:
        raise ApiError(400, "after is not a cursor of this list: pass back the `next` of the previous page as it "
                            "was") from None


async def _page(pool: asyncpg.Pool, tenant: str, stores: list[str] | None, state: str | None,
                attention: bool | None, after: uuid.UUID | None, limit: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(LISTED, tenant, stores, state, attention, after, limit + 1)
    return [Intent.of(row).to_json() for row in rows]


async def _one(pool: asyncpg.Pool, tenant: str, intent_id: uuid.UUID) -> tuple[Intent, list[dict[str, Any]]] | None:
    async with pool.acquire() as conn:
        intent = await intents.by_id(conn, tenant, intent_id)
        if intent is None:
            return None
        refunds = [{**dict(row), "created_at": row["created_at"].isoformat()}
                   for row in await conn.fetch(REFUNDS, intent.id)]
    return intent, refunds


def _refused(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The console's answer to a refusal of the service's."""
    said = refusal(exc)
    assert said is not None
    body: dict[str, Any] = {"error": said["message"]}
    if isinstance(exc, Refused):
        body.update(code="invalid_state_transition", state=said["state"])
    elif isinstance(exc, Conflict):
        body.update(code="conflict")
    return int(said["code"]), body


def console_refund_key(login: str, intent_id: uuid.UUID, key: str) -> str:
    """The refund key of a console refund sent with an Idempotency-Key: the person's and the intent's, so that
    another person's (or another payment's) refund under the same key is never answered as theirs."""
    return hashlib.sha256(f"{login}\n{intent_id}\n{key}".encode()).hexdigest()[:40]


def routes(console: Console) -> Sequence[BaseRoute]:
    async def find(principal: Principal, raw_id: str, permission: Permission) -> Intent:
        """The tenant's intent (404 otherwise), if `permission` reaches its store (403 otherwise)."""
        found = await console.seam.run(_one, console.ready_pool(), principal.tenant, _uuid(raw_id))
        if found is None:
            raise ApiError(404, f"there is no payment {validators.describe(raw_id)}")
        principal.require(permission, store=found[0].store)
        return found[0]

    async def change(request: Request, principal: Principal, body: dict[str, Any], act: Act, *,
                     done: int = 200) -> Response:
        """Run `act` through the payment service once per Idempotency-Key, in one seam crossing."""
        key = idempotency.key_of(request.headers.get(idempotency.HEADER))

        async def run() -> idempotency.Answer:
            try:
                intent, answer = await act(provider.serving(console.ready_pool()))
            except (Refused, NotFound, Conflict, NoProvider, Declined) as exc:
                return _refused(exc)
            return (202 if intent.state == State.PROCESSING else done), answer

        async def crossing() -> idempotency.Answer:
            if key is None:
                return await run()
            seen = idempotency.fingerprint(request.method, request.url.path, body, principal.login)
            try:
                return await idempotency.once(console.ready_pool(), principal.tenant, key, seen, run)
            except Conflict as exc:
                return _refused(exc)
        status, answer = await console.seam.run(crossing)
        return JSONResponse(answer, status_code=status)

    async def listed(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PAYMENTS)
        tenant_of(principal, request.query_params.get("tenant"))
        stores = principal.reach(Permission.VIEW_PAYMENTS).store_filter()
        limit, state, attention, after = _limit(request), _state(request), _attention(request), _after(request)
        if "store" in request.query_params:
            store = _query_store(request.query_params["store"])
            if not (await console.query(STORE_EXISTS, principal.tenant, store))[0]["found"]:
                raise ApiError(404, f"there is no store {store}")
            principal.require(Permission.VIEW_PAYMENTS, store=store)
            stores = [store]
        items = [] if stores == [] else await console.seam.run(
            _page, console.ready_pool(), principal.tenant, stores, state, attention, after, limit)
        return JSONResponse(keyset.page(items, limit, lambda item: (item["id"],)))

    async def create(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_PAYMENTS)
        body = await json_body(request)
        store = validators.token("store", body.get("store"))
        principal.require(Permission.MANAGE_PAYMENTS, store=store)
        if not (await console.query(STORE_EXISTS, principal.tenant, store))[0]["found"]:
            raise ApiError(404, f"there is no store {store}")
        tender_id = validators.token("tender_id", body.get("tender_id"))
        method = body.get("method", "card")
        if method not in ("card", "qr"):
            raise validators.Invalid("method", "must be card or qr (a card present at a till is the till's)")
        amount = validators.minor_units("amount_minor", body.get("amount_minor"), minimum=1)
        currency = validators.currency("currency", body.get("currency"))
        till = None if body.get("till") is None else validators.token("till", body.get("till"))

        async def act(payments: Payments) -> tuple[Intent, dict[str, Any]]:
            intent = await payments.create(principal.tenant, store, tender_id=tender_id, method=method,
                                           amount_minor=amount, currency=currency, actor=principal.login, till=till)
            return intent, {"intent": intent.to_json()}
        return await change(request, principal, body, act, done=201)

    async def one(request: Request) -> Response:
        principal = await authorize(console, request, Permission.VIEW_PAYMENTS)
        found = await console.seam.run(_one, console.ready_pool(), principal.tenant,
                                       _uuid(request.path_params["id"]))
        if found is None:
            raise ApiError(404, f"there is no payment {validators.describe(request.path_params['id'])}")
        principal.require(Permission.VIEW_PAYMENTS, store=found[0].store)
        return JSONResponse({"intent": found[0].to_json(), "refunds": found[1]})

    async def capture(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_PAYMENTS)
        intent = await find(principal, request.path_params["id"], Permission.MANAGE_PAYMENTS)
        body = await json_body(request)
        amount = None if body.get("amount_minor") is None else validators.minor_units(
            "amount_minor", body["amount_minor"], minimum=1)

        async def act(payments: Payments) -> tuple[Intent, dict[str, Any]]:
            captured = await payments.capture(principal.tenant, intent.id, amount_minor=amount, actor=principal.login)
            return captured, {"intent": captured.to_json()}
        return await change(request, principal, body, act)

    async def cancel(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_PAYMENTS)
        intent = await find(principal, request.path_params["id"], Permission.MANAGE_PAYMENTS)
        body = await json_body(request)
        why = reason("reason", body.get("reason")) or "voided from the console"

        async def act(payments: Payments) -> tuple[Intent, dict[str, Any]]:
            cancelled = await payments.cancel(principal.tenant, intent.id, actor=principal.login, reason=why)
            return cancelled, {"intent": cancelled.to_json()}
        return await change(request, principal, body, act)

    async def refund(request: Request) -> Response:
        principal = await authorize(console, request, Permission.MANAGE_PAYMENTS)
        intent = await find(principal, request.path_params["id"], Permission.MANAGE_PAYMENTS)
        body = await json_body(request)
        amount = validators.minor_units("amount_minor", body.get("amount_minor"), minimum=1)
        why = reason("reason", body.get("reason"))
        key = idempotency.key_of(request.headers.get(idempotency.HEADER))
        refund_key = validators.token("refund_key", body["refund_key"], max_length=128) if "refund_key" in body \
            else "console-" + (console_refund_key(principal.login, intent.id, key) if key else str(uuid.uuid4()))

        async def act(payments: Payments) -> tuple[Intent, dict[str, Any]]:
            refunded, made = await payments.refund(principal.tenant, intent.id, amount_minor=amount,
                                                   refund_key=refund_key, actor=principal.login, reason=why)
            declined(refunded, made)
            return refunded, {"intent": refunded.to_json(), "refund": made.to_json()}
        return await change(request, principal, body, act)

    async def settings(request: Request) -> Response:
        if request.method == "GET":
            principal = await authorize(console, request, Permission.VIEW_PAYMENTS)
            async def read(pool: asyncpg.Pool) -> OfflineLimits:
                async with pool.acquire() as conn:
                    return await offline_limits.limits(conn, principal.tenant)
            return JSONResponse((await console.seam.run(read, console.ready_pool())).to_json())
        principal = await authorize(console, request, Permission.MANAGE_PAYMENTS, tenant_wide=True)
        body = await json_body(request)
        new = OfflineLimits(*(validators.minor_units(name, body.get(name), maximum=MAX_LIMIT_MINOR)
                              for name in ("offline_per_payment_minor", "offline_store_total_minor")))
        if new.offline_per_payment_minor > new.offline_store_total_minor:
            raise validators.Invalid("offline_per_payment_minor", "must not exceed offline_store_total_minor")
        saved = await console.seam.run(offline_limits.set_limits, console.ready_pool(), principal.tenant, new,
                                       principal.login)
        return JSONResponse(saved.to_json())

    return [route("/api/payments/intents", GET=listed, POST=create),
            route("/api/payments/intents/{id}", GET=one),
            route("/api/payments/intents/{id}/capture", POST=capture),
            route("/api/payments/intents/{id}/cancel", POST=cancel),
            route("/api/payments/intents/{id}/refund", POST=refund),
            route("/api/payments/settings", GET=settings, PUT=settings)]


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
        "description": "the same key again (within 24 h) answers the first answer; with another body: 409",
        "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH}}
_INTENT_ANSWER = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PaymentAnswer"}}}}
_CHANGE_ANSWERS = {
    "200": {"description": "done: the intent as it is now", **_INTENT_ANSWER},
    "202": {"description": "the provider did not answer in time: the intent is processing until the watchdog "
                           "learns how it ended", **_INTENT_ANSWER},
    "402": {"description": "the provider declined the refund: nothing was refunded", "content": _ERROR},
    "404": {"description": "no such payment", "content": _ERROR},
    "409": {"description": "the payment's state does not allow this (code invalid_state_transition, with its "
                           "state), or the Idempotency-Key was used for another request (code conflict)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PaymentRefusal"}}}},
    "422": {"description": "a field is out of bounds; the error says which", "content": _ERROR},
    "503": {"description": "no provider configured, or it could not be reached: nothing was done",
            "content": _ERROR}}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": bool(required), "content": {"application/json": {"schema": {
        "type": "object", "required": required, "properties": properties}}}}


def _action(summary: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [_ID, _KEY], "requestBody": _body(properties, required),
                     "responses": _CHANGE_ANSWERS}}


_MINOR = {"type": "integer", "minimum": 1, "maximum": validators.MAX_MINOR}
_LIMIT_MINOR = {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT_MINOR}
_REASON = {"type": "string", "maxLength": validators.MAX_TEXT_LENGTH}
OPENAPI: dict[str, Any] = {"paths": {
    "/api/payments/intents": {
        "get": {"summary": "Payment intents (one per card or QR tender), newest first, a keyset page at a time",
                "parameters": [
                    {"name": "store", "in": "query", "required": False, "description": "only this store's (404: not "
                     "the tenant's; 403: outside the user's reach)",
                     "schema": {"type": "string", "pattern": f"^{validators.TOKEN_PATTERN}$"}},
                    {"name": "state", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": [str(state) for state in State]}},
                    {"name": "attention", "in": "query", "required": False, "description": "true: only those a "
                     "person must look at (a call still unknown, an offline approval declined later)",
                     "schema": {"type": "boolean"}},
                    keyset.parameter("id, newest first"),
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}}],
                "responses": {"200": {"description": "a page of intents", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PaymentIntentsPage"}}}},
                    "400": {"description": "a bad filter, limit or cursor", "content": _ERROR},
                    "404": {"description": "no such store", "content": _ERROR}}},
        "post": {"summary": "A payment intent waiting for its payment method (a card not present, a QR payment); "
                            "the same tender id again answers the same intent",
                 "parameters": [_KEY],
                 "requestBody": _body({"store": {"type": "string"}, "tender_id": {"type": "string"},
                                       "method": {"type": "string", "enum": ["card", "qr"]}, "amount_minor": _MINOR,
                                       "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                       "till": {"type": ["string", "null"]}},
                                      ["store", "tender_id", "amount_minor", "currency"]),
                 "responses": {**_CHANGE_ANSWERS, "201": {"description": "created (or the tender's intent)",
                                                          **_INTENT_ANSWER}}}},
    "/api/payments/intents/{id}": {"get": {
        "summary": "One payment intent with its refunds", "parameters": [_ID],
        "responses": {"200": {"description": "the intent and its refunds", "content": {"application/json": {
            "schema": {"type": "object", "required": ["intent", "refunds"], "properties": {
                "intent": {"$ref": "#/components/schemas/PaymentIntent"},
                "refunds": {"type": "array", "items": {"type": "object"}}}}}}},
            "404": {"description": "no such payment", "content": _ERROR}}}},
    "/api/payments/intents/{id}/capture": _action(
        "Capture an authorized payment through the provider (all that was authorized unless amount_minor); audited",
        {"amount_minor": _MINOR}, []),
    "/api/payments/intents/{id}/cancel": _action(
        "Void a payment not yet captured (through the provider when it holds money); audited",
        {"reason": _REASON}, []),
    "/api/payments/intents/{id}/refund": _action(
        "Refund part or all of a captured payment to its card through the provider; audited. refund_key (or the "
        "Idempotency-Key) makes it once", {"amount_minor": _MINOR, "reason": _REASON,
                                          "refund_key": {"type": "string", "maxLength": 128}}, ["amount_minor"]),
    "/api/payments/settings": {
        "get": {"summary": "The tenant's offline card limits (what a store may take while it cannot reach the hub)",
                "responses": {"200": {"description": "the limits", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PaymentSettings"}}}}}},
        "put": {"summary": "Set the tenant's offline card limits (tenant-wide payments managers); audited",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PaymentSettings"}}}},
                "responses": {"200": {"description": "the limits now", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PaymentSettings"}}}},
                    "422": {"description": "a limit out of bounds", "content": _ERROR}}}}},
    "schemas": {
        "PaymentIntentsPage": keyset.schema("PaymentIntent", MAX_PAGE),
        "PaymentIntent": {"type": "object", "required": ["id", "store", "tender_id", "state", "amount_minor"],
                          "properties": {"state": {"type": "string", "enum": [str(state) for state in State]},
                                         "pending": {"type": ["string", "null"]},
                                         "attention": {"type": ["string", "null"]}}},
        "PaymentAnswer": {"type": "object", "required": ["intent"], "properties": {
            "intent": {"$ref": "#/components/schemas/PaymentIntent"},
            "refund": {"type": "object", "properties": {"key": {"type": "string"}, "amount_minor": _MINOR,
                                                        "state": {"type": "string"}, "via": {"type": "string"}}}}},
        "PaymentRefusal": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "code": {"type": "string", "enum": ["invalid_state_transition", "conflict"]},
            "state": {"type": "string"}}},
        "PaymentSettings": {"type": "object", "required": ["offline_per_payment_minor", "offline_store_total_minor"],
                            "properties": {"offline_per_payment_minor": _LIMIT_MINOR,
                                           "offline_store_total_minor": _LIMIT_MINOR}}}}
