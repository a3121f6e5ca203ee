"""The till's QR tender: a payment the customer makes on their phone, through the hub and its payment provider.

The till asks the hub for a QR payment of the amount (pay_qr, keyed by the tender's id: asked again, the hub
answers the same payment) and only then adds the tender, pending, with the hub's pay URL, which the page shows
as a QR code (`svg`). How it ended arrives live: the store's payment-event consumer (actors.payments.events)
tells the till the hub's payment.<state> event of the tender's intent (`settle`: captured -> approved, failed
-> declined, cancelled -> cancelled); while a QR tender is pending the till also asks pay_status every POLL_S,
in case an event is late or lost. A QR payment needs the hub: offline nothing starts, and the cashier reads
QR_OFFLINE. Cancelling a pending QR tender cancels its intent at the hub (pay_cancel); when the hub refuses
because the customer paid meanwhile, the tender is settled as paid. A paid QR tender counts toward the sale like
an approved card, and a sale with one is sale.completed v4 (every other sale stays v3). Money of a QR payment
goes back through the hub (pay_refund), online only: for a QR tender given back before its sale completed, and
for a return refunded to the QR payment of its sale (return.completed v2).

Every answer from the hub is checked like client input before the till keeps any of it.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import qrcode
import qrcode.image.svg
from prometheus_client import Counter

from actors.payments import asking
from actors.payments.asking import HubRefused, HubUnreachable, PaymentsHub, Unconfirmed
from actors.protocol import Rejected
from actors.till.cart import Cart
from actors.till.tenders import MAX_PAY_URL, Qr, Tender
from novapos import validators
from novapos.money import Money
from novapos.wire.payments import CANCEL, QR, REFUND, STATUS

log = logging.getLogger(__name__)

QR_TENDERS = Counter("novapos_edge_payment_qr_tenders_total", "QR tenders by how they ended (approved, declined, "
                     "cancelled, failed; reversed: given back through the hub)", ["till", "outcome"])

QR_OFFLINE = "QR payments need the hub and the store is offline: take card or cash"
REFUND_OFFLINE = ("the refund to the QR payment needs the hub and the store is offline: refund to cash instead, "
                  "or wait for the hub")
WAITING = "waiting_for_phone"
WAITING_WORDS = "scan the code with the phone to pay"
POLL_S = 2.0
"""How often a pending QR tender asks the hub how it stands, besides the live events."""
START_WITHIN_S = 5.0
"""pay_qr: the hub asks the provider for a checkout before it answers."""
POLL_WITHIN_S = 1.0
"""pay_status: the hub answers from its own tables (the till's mailbox waits meanwhile, so keep it short)."""
CHANGE_WITHIN_S = 5.0
"""pay_cancel and pay_refund: the hub asks the provider before it answers."""
PAID = ("captured", "authorized")
WAITING_STATES = ("awaiting_payment_method", "processing")
"""An intent's states that are not an end yet: its QR tender stays pending."""
"""An intent's states in which the customer has paid (a QR payment is captured at once; authorized is held)."""


def sale_version(body: Mapping[str, Any]) -> int:
    """The sale.completed version of a sale body: 4 when a QR payment paid part of it, else 3."""
    return 4 if any(tender["method"] == "qr" for tender in body["tenders"]) else 3


def return_version(body: Mapping[str, Any]) -> int:
    """The return.completed version of a return body: 3 when the sale had a customer or the refund goes to points or
    a gift card, 2 when it refunds to a QR payment, else 1."""
    if "customer" in body or any(refund["method"] in ("points", "gift_card") for refund in body["refunds"]):
        return 3
    return 2 if any(refund["method"] == "qr" for refund in body["refunds"]) else 1


def start(hub: PaymentsHub | None, cart: Cart, amount: int, tender_id: str, till: str,
          actor: str) -> Tender | Rejected:
    """A pending QR tender of `amount` for `cart` (at most what is due), once the hub has made its payment; a tender
    id the cart already has answers that tender (a resend starts nothing). Blocks the caller for the hub's answer
    (at most START_WITHIN_S)."""
    if (known := cart.tenders.find(tender_id)) is not None:
        return known if known.method == "qr" else Rejected("conflict", "that tender id is another tender's")
    if hub is None:
        return Rejected("conflict", f"till {till} has no link to the hub: take card or cash")
    if (refused := cart.may_pay_by_qr(amount)) is not None:
        return refused
    request = {"tender_id": tender_id, "till": till, "amount_minor": amount, "currency": cart.currency, "actor": actor}
    try:
        answer = hub.ask(QR, request, START_WITHIN_S)
        intent = checked_intent(answer.get("intent"))
        pay_url = validators.text("pay_url", answer.get("pay_url"), max_length=MAX_PAY_URL)
        expires_at = validators.text("expires_at", answer.get("expires_at"), max_length=40)
    except HubUnreachable as exc:
        log.info("till %s: no QR payment, the hub is not reachable (%s)", till, exc)
        return Rejected("conflict", QR_OFFLINE)
    except HubRefused as exc:
        return Rejected("conflict", f"the hub refused the QR payment: {validators.describe(str(exc))}")
    except validators.Invalid as exc:
        log.warning("till %s: the hub's answer to pay_qr was refused: %s", till, exc)
        return Rejected("conflict", f"the hub's answer could not be used ({exc}): try again")
    if not pay_url.startswith(("https://", "http://")) or intent["tender_id"] != tender_id \
            or intent["amount_minor"] != amount or intent["currency"] != cart.currency:
        log.warning("till %s: the hub answered pay_qr with another payment (%s)", till, intent)
        return Rejected("conflict", "the hub answered with another payment than the one asked: try again")
    tender = Tender(tender_id, "qr", amount, "pending", WAITING, WAITING_WORDS, started_ms=int(time.time() * 1000),
                    qr=Qr(intent["id"], intent["provider_ref"] or intent["id"], pay_url, expires_at))
    settle(tender, intent)  # paid already: a resend after a restart that lost the tender
    cart.tenders.items.append(tender)
    return tender


def checked_intent(raw: Any) -> dict[str, Any]:
    """The fields of an intent (hub.payments Intent.to_json) the till uses, checked; Invalid otherwise."""
    v = validators
    if not isinstance(raw, dict):
        raise v.Invalid("intent", "must be an object")
    provider_ref = raw.get("provider_ref")
    return {"id": v.token("intent id", raw.get("id"), max_length=64),
            "tender_id": v.uuid_text("intent tender_id", raw.get("tender_id")),
            "method": v.token("intent method", raw.get("method")),
            "state": v.token("intent state", raw.get("state")),
            "currency": v.currency("intent currency", raw.get("currency")),
            "amount_minor": v.minor_units("intent amount_minor", raw.get("amount_minor")),
            "captured_minor": v.minor_units("intent captured_minor", raw.get("captured_minor", 0)),
            "authorized_minor": v.minor_units("intent authorized_minor", raw.get("authorized_minor", 0)),
            "provider_ref": "" if provider_ref in (None, "") else v.text("intent provider_ref", provider_ref,
                                                                          max_length=64)}


def settle(tender: Tender, intent: Mapping[str, Any]) -> bool:
    """Apply what the hub says of the tender's intent (checked_intent) to a pending QR tender; True if it changed."""
    if tender.state != "pending" or tender.qr is None or intent["tender_id"] != tender.id:
        return False
    before = (tender.state, tender.message)
    if intent["provider_ref"]:
        tender.qr.provider_ref = intent["provider_ref"]
    state = intent["state"]
    if state in PAID:
        paid = intent["captured_minor"] or intent["authorized_minor"]
        if paid != tender.amount:  # the provider took another amount: a bug somewhere, never a sale
            tender.state, tender.message = "failed", f"the QR payment took {paid}, not {tender.amount}: call support"
        else:
            tender.state, tender.message = "approved", "paid by QR"
    elif state == "failed":
        tender.state, tender.message = "declined", "the QR payment failed: ask for another way to pay"
    elif state == "cancelled":
        tender.state = "cancelled"
        tender.message = ("cancelled at the till" if tender.cancel == "cashier"
                          else "the QR code expired or the customer cancelled the payment")
    elif state == "refunded":
        tender.state, tender.message = "reversed", "the QR payment was refunded at the hub: ask for another way to pay"
    elif state not in WAITING_STATES:  # any other end the hub may name: never pending forever
        tender.state, tender.message = "failed", f"the QR payment ended {state} at the hub: ask for another way to pay"
    if tender.state != "pending":
        tender.stage = ""
    return (tender.state, tender.message) != before


def event_intent(event_type: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The QR intent a payment event (payment.<state>, {"intent": {...}}) is about, checked; None when the event is
    not about a QR payment or cannot be read (logged: it came over the network)."""
    raw = body.get("intent")
    if not event_type.startswith("payment.") or not isinstance(raw, dict) or raw.get("method") != "qr":
        return None
    try:
        return checked_intent(raw)
    except validators.Invalid as exc:
        log.warning("a %s event about a QR payment cannot be read: %s", event_type, exc)
        return None


def poll(hub: PaymentsHub | None, tender: Tender, till: str) -> bool:
    """Ask the hub how the pending QR tender stands (pay_status); True if the tender changed. A hub that does not
    answer changes nothing: the tender stays pending and the next poll asks again."""
    if hub is None:
        return False
    try:
        answer = hub.ask(STATUS, {"tender_id": tender.id}, POLL_WITHIN_S)
        raw = answer.get("intent")
        intent = None if raw is None else checked_intent(raw)
    except (HubUnreachable, HubRefused) as exc:
        log.debug("till %s: QR tender %s: no status from the hub (%s)", till, tender.id, exc)
        return False
    except validators.Invalid as exc:
        log.warning("till %s: QR tender %s: the hub's status was refused: %s", till, tender.id, exc)
        return False
    return intent is not None and settle(tender, intent)


def cancel(hub: PaymentsHub | None, tender: Tender, actor: str, till: str) -> Rejected | None:
    """Cancel the pending QR tender's intent at the hub and settle the tender with the answer. The hub refusing
    because the customer has just paid settles it as paid (the cashier sees it approved). Offline: refused, the
    tender stays pending (the customer may still pay; its code expires at the hub)."""
    if hub is None:
        return Rejected("conflict", f"till {till} has no link to the hub")
    tender.cancel = "cashier"
    try:
        answer = hub.ask(CANCEL, {"tender_id": tender.id, "reason": "cancelled at the till", "actor": actor},
                         CHANGE_WITHIN_S)
        settle(tender, checked_intent(answer.get("intent")))
    except HubUnreachable:
        tender.cancel = None
        expires = f" at {tender.qr.expires_at}" if tender.qr is not None and tender.qr.expires_at else ""
        return Rejected("conflict", "the hub does not answer, so the QR payment cannot be cancelled now: wait for "
                                    f"the customer's phone, or for the code to expire{expires}")
    except HubRefused as exc:
        if not poll(hub, tender, till):  # refused: the payment moved on (paid, most likely): take its state
            tender.cancel = None
            return Rejected("conflict", f"the hub did not cancel the QR payment: {validators.describe(str(exc))}")
    except validators.Invalid as exc:
        log.warning("till %s: the hub's answer to pay_cancel was refused: %s", till, exc)
        tender.cancel = None
        return Rejected("conflict", f"the hub's answer could not be used ({exc}): try again")
    return None


DECLINED = "the provider declined the refund to the QR payment: refund in cash instead"


def refund(hub: PaymentsHub | None, tender_id: str, amount: int, refund_key: str, actor: str, reason: str,
           offline: str, asked_before: bool = False) -> dict[str, Any] | Rejected:
    """Refund `amount` of the QR payment of tender `tender_id` through the hub (pay_refund), under `refund_key`
    (the same key refunds once, however often it is asked); the refunded intent once the refund succeeded, a
    refusal when nothing was refunded (`offline` when the hub did not get the request), or Unconfirmed when it may
    have been (a timeout, a refund still processing, an unreadable answer, no answer to a request `asked_before`):
    ask again under the same key, never refund another way meanwhile."""
    if hub is None:
        return Rejected("conflict", offline)
    body = {"tender_id": tender_id, "amount_minor": amount, "refund_key": refund_key, "actor": actor, "reason": reason}
    try:
        answer = hub.ask(REFUND, body, CHANGE_WITHIN_S)
        state = asking.refund_state(answer)
        intent = checked_intent(answer.get("intent"))
    except HubUnreachable as exc:
        return Unconfirmed("conflict", asking.UNCONFIRMED) if exc.maybe_done or asked_before else Rejected("conflict", offline)
    except HubRefused as exc:
        if exc.code == 402:
            return Rejected("conflict", DECLINED)
        said = str(exc) if validators.is_text(str(exc), 300) else validators.describe(str(exc))
        refused = f"the hub refused the refund to the QR payment: {said}"
        return Rejected("conflict", refused) if exc.code in asking.NOTHING_REFUNDED else Unconfirmed("conflict", refused)
    except validators.Invalid as exc:
        return Unconfirmed("conflict", f"the hub's answer to the refund could not be used ({exc}): try again")
    if state == "failed":
        return Rejected("conflict", DECLINED)
    return intent if state == "succeeded" else Unconfirmed("conflict", asking.UNCONFIRMED)


def give_back(hub: PaymentsHub | None, tenders: list[Tender], actor: str, why: str, currency: str) -> Rejected | None:
    """Refund the approved QR tenders of a sale that will not complete (voided, or one tender given back), before
    the till forgets them: the first that cannot be refunded refuses the whole (the cart stays as it was)."""
    for tender in tenders:
        if tender.method != "qr" or tender.state != "approved":
            continue
        key = str(uuid.uuid5(uuid.UUID(tender.id), "given back"))
        done = refund(hub, tender.id, tender.amount, key, actor, why,
                      "the QR payment must go back to the customer's phone, and the hub does not answer: wait for "
                      "the hub before voiding it")
        if isinstance(done, Rejected):
            return done
        tender.state, tender.message = "reversed", "given back to the customer's phone"
        log.info("till: QR tender %s of %s given back through the hub (%s)", tender.id,
                 Money(tender.amount, currency).format(), why)
    return None


def svg(pay_url: str) -> bytes:
    """The pay URL as a QR code, an SVG image the page shows (no script needed to draw it)."""
    image = qrcode.make(pay_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()
