"""The till's customer API (behind the PIN login): find, enrol, attach and show a customer, and the points and gift
card tenders (actors.till.customers, actors.till.rewards). Everyday till work: Permission.SELL.

GET    /api/tills/{till}/customers?q=QUERY     a phone, an email or a (scanned) loyalty card number: {customers,
                                               offline, message?} (offline: the store's recent customers, said so)
POST   /api/tills/{till}/customers             {name, phone?, email?, request?}: enrol at the hub, attached to the
                                               sale (request: a UUID kept across retries of one enrolment)
PUT    /api/tills/{till}/customer              {customer}: attach a customer found to the sale
DELETE /api/tills/{till}/customer              detach
GET    /api/tills/{till}/customer              the attached customer's 360 (points, tier, expiring soon, orders)
POST   /api/tills/{till}/tenders               {method: "points", amount_minor, id} or {method: "gift_card", card,
                                               amount_minor, id} (edge.api.tills hands them here)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.api.asking import ask, known_till, unless_refused
from edge.api.auth import signed_in
from edge_runtime import Tree
from novapos.adapters.http import ApiError, json_body, route
from novapos.roles import Permission
from novapos.validators import Invalid, minor_units, text, uuid_text

MAX_QUERY = 120
MAX_CARD = 40


def _query(value: Any) -> str:
    query = text("q", value, max_length=MAX_QUERY).strip()
    if len(query) < 3:
        raise Invalid("q", "must be at least 3 characters: a phone, an email or a card number")
    return query


def _phone(value: Any) -> str:
    phone = text("phone", value, max_length=32)
    digits = sum(ch.isdigit() for ch in phone)
    if digits < 6 or any(not (ch.isdigit() or ch in "+ -()/.") for ch in phone):
        raise Invalid("phone", "must be a phone number: digits, spaces and + - ( ) / . only, at least 6 digits")
    return phone


def _email(value: Any) -> str:
    email = text("email", value, max_length=254).strip()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email or domain.startswith(".") or domain.endswith("."):
        raise Invalid("email", "must be an email address like name@example.com")
    return email


def gift_card_number(value: Any) -> str:
    card = text("card", value, max_length=MAX_CARD).replace(" ", "").replace("-", "")
    if not card.isalnum() or not 8 <= len(card) <= MAX_CARD:
        raise Invalid("card", "must be the gift card's number: 8 to 40 letters and digits (spaces and - allowed)")
    return card


def redeeming(body: dict[str, Any], method: str) -> tuple[str, tuple[Any, ...]]:
    """The till's method and arguments for a points or gift card tender of a tender request's body."""
    amount = minor_units("amount_minor", body.get("amount_minor"), minimum=1)
    if body.get("id") is None:
        raise ApiError(422, f"a {method.replace('_', ' ')} tender needs its id (a UUID the page makes): it names the "
                            "redemption at the hub, so a resend never takes twice")
    tender_id = uuid_text("id", body.get("id"))
    if method == "points":
        return "tender_points", (amount, tender_id)
    return "tender_gift_card", (gift_card_number(body.get("card")), amount, tender_id)


def loyalty_routes(tree: Tree, tills: tuple[str, ...]) -> list[Route]:
    async def ask_till(request: Request, method: str, *args: Any) -> JSONResponse:
        till = known_till(request, tills)
        await signed_in(request, tree, Permission.SELL)
        return JSONResponse(unless_refused(await ask(tree, f"till.{till}", method, *args)))

    async def find(request: Request) -> Response:
        known_till(request, tills)
        return await ask_till(request, "find_customer", _query(request.query_params.get("q")))

    async def enrol(request: Request) -> Response:
        known_till(request, tills)
        body = await json_body(request)
        details = {"name": text("name", body.get("name"), max_length=120)}
        if body.get("phone") not in (None, ""):
            details["phone"] = _phone(body["phone"])
        if body.get("email") not in (None, ""):
            details["email"] = _email(body["email"])
        if len(details) == 1:
            raise ApiError(422, "a customer needs a phone or an email to be found again")
        enrolment = None if body.get("request") in (None, "") else uuid_text("request", body["request"])
        user = await signed_in(request, tree, Permission.SELL)
        return await ask_till(request, "enrol_customer", details, user.login, enrolment)

    async def attach(request: Request) -> Response:
        known_till(request, tills)
        customer = uuid_text("customer", (await json_body(request)).get("customer"))
        return await ask_till(request, "attach_customer", customer)

    async def detach(request: Request) -> Response:
        return await ask_till(request, "detach_customer")

    async def overview(request: Request) -> Response:
        return await ask_till(request, "customer_overview")

    return [
        route("/api/tills/{till}/customers", GET=find, POST=enrol),
        route("/api/tills/{till}/customer", GET=overview, PUT=attach, DELETE=detach),
    ]
