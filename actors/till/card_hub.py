"""A till's card tenders and the hub: what the till asks the store's cards actor (actors.payments.cards) and commits.

Kept beside the till actor (actors.till.actor), which calls these at four points of a card's life: before the
terminal hears of it (`begin`: online, offline under the limits, or refused with a sentence), when the terminal
approved it (`approved`: the card.approved event committed to the outbox, then the hub told at once when it can),
when it ended otherwise (`ended`) and when an approval is given back (`abandoned`). A refund to the original card
asks the hub first (`refund_through_hub`).

Nothing here blocks a sale on the hub: the cards actor answers `begin` within its own short wait, and every other
call is a tell.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pykka

from actors.payments.cards import ANSWER_WITHIN_S
from actors.payments.cards import NAME as CARDS
from actors.protocol import Rejected
from actors.till.tenders import Tender
from edge_runtime import Registry
from novapos.money import Money

log = logging.getLogger(__name__)

BEGIN_WAIT_S = ANSWER_WITHIN_S + 3.0
REFUND_WAIT_S = ANSWER_WITHIN_S + 3.0
ASK_AGAIN = "the store's card service is busy: try the card again"


def begin(registry: Registry, till: str, tender: Tender, currency: str) -> bool | Rejected:
    """Whether the card goes to the terminal offline (True) or online (False); Rejected with the cashier's sentence
    when it may not be taken at all. A store without a cards actor (a test tree) takes every card online."""
    try:
        answer = registry.ask(CARDS, "begin", till, tender.id, tender.amount, currency, timeout=BEGIN_WAIT_S)
    except LookupError:
        return False
    except pykka.Timeout:
        return Rejected("busy", ASK_AGAIN)
    if isinstance(answer, Rejected):
        return answer
    return bool(answer["offline"])


def approval(tender: Tender, till: str, currency: str) -> dict[str, Any]:
    """The card.approved v1 body of an approved card tender."""
    card = tender.card
    assert card is not None
    body: dict[str, Any] = {
        "till": till, "tender": tender.id, "currency": currency, "amount": Money(tender.amount, currency).to_wire(),
        "card": {"reference": card.reference, "scheme": card.scheme or "UNKNOWN", "masked": card.masked or "****",
                 "terminal": card.terminal, **({"auth_code": card.auth_code} if card.auth_code else {})},
        "offline": card.offline}
    if card.offline:
        body["card_token"] = card.token
    return body


def approved(registry: Registry, till: str, tender: Tender, currency: str) -> None:
    """Commit card.approved (durable: the hub's intent comes from it whatever else happens), then tell the cards
    actor (the fast path to the hub). An approval the outbox cannot take is logged loudly: the money is taken, the
    sale carries the card tender, and the hub flags the sale's card as missing its intent."""
    body = approval(tender, till, currency)
    try:
        committed = registry.ask("outbox", "append", "card.approved", 1, body, key=f"card.approved:{tender.id}",
                                 timeout=30.0)
    except pykka.Timeout:
        committed = Rejected("busy", "the outbox did not answer in 30 s")
    if isinstance(committed, Rejected):
        log.error("till %s: the approval of card tender %s was not committed (%s): the hub will learn of it from the "
                  "sale only", till, tender.id, committed.message)
    else:
        registry.tell("forwarder", "kick")
    _tell(registry, "approved", body)


def ended(registry: Registry, tender: Tender) -> None:
    """A card that ended without an approval: an offline reservation is freed."""
    if tender.card is not None and tender.card.offline:
        _tell(registry, "ended", tender.id)


def abandoned(registry: Registry, tender: Tender, by: str) -> None:
    """An approved card given back (its sale or tender voided): cancelled at the hub too."""
    _tell(registry, "abandoned", tender.id, f"till-user:{by}")


def refund_through_hub(registry: Registry, original_reference: str | None, amount_minor: int, refund_id: str,
                       cashier: str, reason: str) -> dict[str, Any] | Rejected | None:
    """Refund `amount_minor` to the card of the original payment through the hub: the return's card_refund, or None
    when the till must refund at its terminal (the hub is away or does not know that payment)."""
    if original_reference is None:
        return None
    try:
        tender_id = str(uuid.UUID(hex=original_reference))
    except ValueError:  # a payment from before the till's references were tender ids
        return None
    try:
        answer = registry.ask(CARDS, "refund", tender_id, amount_minor, refund_id, f"till-user:{cashier}", reason,
                              timeout=REFUND_WAIT_S)
    except LookupError:
        return None
    except pykka.Timeout:
        return Rejected("busy", "the store's card service is busy: complete the return again (the card is refunded "
                                "once)")
    if answer is None or isinstance(answer, Rejected):
        return answer
    intent = answer.get("intent") or {}
    return {"id": refund_id, "amount": amount_minor, "reference": uuid.UUID(refund_id).hex,
            "original_reference": original_reference, "scheme": str(intent.get("scheme") or "card")[:32],
            "masked": str(intent.get("masked") or "****")[:32]}


def _tell(registry: Registry, method: str, *args: Any) -> None:
    try:
        registry.tell(CARDS, method, *args)
    except LookupError:
        pass  # a tree without the cards actor (a test's): the outbox's events carry the news
