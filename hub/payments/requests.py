"""The stores' payment requests (novapos.<tenant>.<store>.req.pay_*, novapos.wire.payments): each checked like
client input, answered through the process's payment service (hub.payments.provider).

The subject says who asks (NATS confines a store to its own subjects): the tenant's intents only, and for
pay_cancel and pay_status the store's own; pay_refund reaches the tenant's (a return may be made at any store). A
request the intent's state or the provider refuses is answered in the body, {"refused": {"code", "message", "state"?}}
(402 the provider declined a refund, 404 no such tender, 409 not in a state that allows it or a key reused, 503 no
provider reachable: nothing done, 504 a refund not confirmed yet: maybe done),
which actors.payments.asking raises as HubRefused; a malformed request is validators.Invalid, the hub's 400 reply.

- pay_intent {tender_id, till, amount_minor, authorized_minor, currency, provider_ref, auth_code, scheme, masked,
  offline, card_token?} -> {"intent"}: a card the terminal approved (or took offline), actor "till:<till>";
- pay_cancel {tender_id, reason, actor} -> {"intent"}: an abandoned sale's approval voided (this store's only);
- pay_refund {tender_id, amount_minor, refund_key, actor, reason} -> {"intent", "refund"}: to the card, through
  the provider (a sale of any of the tenant's stores: returns cross stores), only once it succeeded: a refund the
  provider declined is refused 402 (the till refunds at its terminal under the same key), one it has not
  confirmed yet 504 (maybe done: ask again with the same key);
- pay_status {tender_id} -> {"intent": ... or null}: the asking store's intents only;
- pay_settings {} -> {"offline_per_payment_minor", "offline_store_total_minor"}.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from hub.payments import intents, offline_limits, provider
from hub.payments.gateway import PROVIDER_REF
from hub.payments.intents import Intent
from hub.payments.model import Refused
from hub.payments.service import SYSTEM, Conflict, Declined, NoProvider, NotFound, Payments, declined
from novapos import validators
from novapos.wire.payments import CANCEL, INTENT, REFUND, SETTINGS, STATUS, decode, encode
from novapos.wire.subjects import parse_request_subject

MAX_REF_LENGTH = 128
MAX_CARD_TOKEN_LENGTH = 256

Handler = Callable[[Payments, asyncpg.Pool, str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def optional_text(where: str, value: Any, max_length: int = MAX_REF_LENGTH) -> str | None:
    return None if value is None or value == "" else validators.text(where, value, max_length=max_length)


def actor(where: str, value: Any) -> str:
    """A person at the store (a cashier's or manager's login): never one of the hub's own actors."""
    checked = validators.text(where, value, max_length=validators.MAX_TOKEN_LENGTH)
    if checked.startswith(SYSTEM):
        raise validators.Invalid(where, f"must not start with {SYSTEM!r}: those are the hub's own")
    return checked


def provider_ref(where: str, value: Any, *, offline: bool) -> str | None:
    """The provider's reference of an approval: required for an online one (it is what the hub captures and voids),
    optional for a card taken offline (the provider's authorization names it later); the gateway's form either way,
    so that no intent holds one the hub cannot send back."""
    if value is None or value == "":
        if offline:
            return None
        raise validators.Invalid(where, "is needed for a card the terminal approved online")
    if not isinstance(value, str) or not PROVIDER_REF.fullmatch(value):
        raise validators.Invalid(where, "must be 1 to 64 letters, digits, ., _ or -")
    return value


def flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise validators.Invalid(where, f"must be true or false, got {validators.describe(value)}")
    return value


def reason(where: str, value: Any) -> str | None:
    return optional_text(where, value, validators.MAX_TEXT_LENGTH)


async def _tender(pool: asyncpg.Pool, tenant: str, body: dict[str, Any], store: str | None = None) -> Intent:
    tender_id = validators.token("tender_id", body.get("tender_id"))
    async with pool.acquire() as conn:
        intent = await intents.by_tender(conn, tenant, tender_id)
    if intent is None or (store is not None and intent.store != store):
        raise NotFound(f"there is no card payment for tender {tender_id}")
    return intent


async def _intent(payments: Payments, _pool: asyncpg.Pool, tenant: str, store: str,
                  body: dict[str, Any]) -> dict[str, Any]:
    amount = validators.minor_units("amount_minor", body.get("amount_minor"), minimum=1)
    till = validators.token("till", body.get("till"))
    offline = flag("offline", body.get("offline", False))
    intent = await payments.record_terminal_approval(
        tenant, store, tender_id=validators.token("tender_id", body.get("tender_id")), till=till,
        amount_minor=amount, authorized_minor=validators.minor_units(
            "authorized_minor", body.get("authorized_minor", amount), maximum=amount),
        currency=validators.currency("currency", body.get("currency")),
        provider_ref=provider_ref("provider_ref", body.get("provider_ref"), offline=offline),
        auth_code=optional_text("auth_code", body.get("auth_code")),
        scheme=optional_text("scheme", body.get("scheme")), masked=optional_text("masked", body.get("masked")),
        offline=offline,
        card_token=optional_text("card_token", body.get("card_token"), MAX_CARD_TOKEN_LENGTH), actor=f"till:{till}")
    return {"intent": intent.to_json()}


async def _cancel(payments: Payments, pool: asyncpg.Pool, tenant: str, store: str,
                  body: dict[str, Any]) -> dict[str, Any]:
    who, why = actor("actor", body.get("actor")), reason("reason", body.get("reason"))
    intent = await _tender(pool, tenant, body, store)
    cancelled = await payments.cancel(tenant, intent.id, actor=who, reason=why or "the sale was abandoned")
    return {"intent": cancelled.to_json()}


async def _refund(payments: Payments, pool: asyncpg.Pool, tenant: str, _store: str,
                  body: dict[str, Any]) -> dict[str, Any]:
    amount = validators.minor_units("amount_minor", body.get("amount_minor"), minimum=1)
    key = validators.token("refund_key", body.get("refund_key"), max_length=128)
    who, why = actor("actor", body.get("actor")), reason("reason", body.get("reason"))
    intent = await _tender(pool, tenant, body)
    refunded, refund = await payments.refund(tenant, intent.id, amount_minor=amount, refund_key=key, actor=who,
                                             reason=why)
    declined(refunded, refund)
    if refund.state == "processing":
        return {"refused": {"code": 504, "message": f"the provider has not confirmed refund {key} yet: ask again "
                                                    "with the same refund key (it refunds once)"}}
    return {"intent": refunded.to_json(), "refund": refund.to_json()}


async def _status(_payments: Payments, pool: asyncpg.Pool, tenant: str, store: str,
                  body: dict[str, Any]) -> dict[str, Any]:
    """The asking store's own intent only (another store's is null, like an unknown tender)."""
    try:
        intent = await _tender(pool, tenant, body, store)
    except NotFound:
        return {"intent": None}
    return {"intent": intent.to_json()}


async def _settings(_payments: Payments, pool: asyncpg.Pool, tenant: str, _store: str,
                    _body: dict[str, Any]) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return (await offline_limits.limits(conn, tenant)).to_json()


def refusal(exc: Exception) -> dict[str, Any] | None:
    """The answer's body for a refusal the service raised (shared with the console's status codes), or None."""
    if isinstance(exc, Refused):
        return {"code": 409, "message": str(exc), "state": str(exc.state)}
    if isinstance(exc, NotFound):
        return {"code": 404, "message": str(exc)}
    if isinstance(exc, Conflict):
        return {"code": 409, "message": str(exc)}
    if isinstance(exc, NoProvider):
        return {"code": 503, "message": str(exc)}
    if isinstance(exc, Declined):
        return {"code": 402, "message": str(exc)}
    return None


def _responder(kind: str, handle: Handler) -> Callable[[asyncpg.Pool, str, bytes], Awaitable[bytes]]:
    async def respond(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
        tenant, store = parse_request_subject(subject, kind)
        body = decode(f"the {kind} request", data)
        try:
            answer = await handle(provider.serving(pool), pool, tenant, store, body)
        except (Refused, NotFound, Conflict, NoProvider, Declined) as exc:
            answer = {"refused": refusal(exc)}
        return encode(answer)
    respond.__name__ = f"answer_{kind}"
    return respond


RESPONDERS = {f"novapos.*.*.req.{kind}": _responder(kind, handle) for kind, handle in (
    (INTENT, _intent), (CANCEL, _cancel), (REFUND, _refund), (STATUS, _status), (SETTINGS, _settings))}
"""The payment request subjects the intents answer (pay_qr and pay_events are the webhooks' and the relay's)."""
