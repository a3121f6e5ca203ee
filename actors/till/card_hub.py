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

from actors.payments.asking import Unconfirmed
from actors.payments.cards import ANSWER_WITHIN_S
from actors.payments.cards import NAME as CARDS
from actors.protocol import Rejected
from actors.till.tenders import Tender
from edge_runtime import Registry
from novapos import validators
from novapos.money import Money

log = logging.getLogger(__name__)

BEGIN_WAIT_S = ANSWER_WITHIN_S + 3.0
REFUND_WAIT_S = ANSWER_WITHIN_S + 3.0
ASK_AGAIN = "the store's card service is busy: try the card again"
NOT_ASKED = Unconfirmed("conflict", "the hub has not confirmed the card refund and the store's card service is "
                                    "not running: complete the return again later (the card is refunded once)")


def begin(registry: Registry, till: str, tender: Tender, currency: str) -> bool | Rejected:
    """Whether the card goes to the terminal offline (True) or online (False); Rejected with the cashier's sentence
    when it may not be taken at all. A store without a cards actor (a test tree) takes every card online."""
    try:
        answer = registry.ask(CARDS, "begin", till, tender.id, tender.amount, currency, timeout=BEGIN_WAIT_S)
    except LookupError:
        return False
    except pykka.Timeout:
        return Rejected("busy", ASK_AGAIN)
    except Exception:  # the cards actor failed on it (it restarts): the till goes on, the cashier tries again
        log.exception("till %s: the cards actor failed before card %s", till, tender.id)
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


def declined(tender: Tender, till: str, currency: str) -> dict[str, Any]:
    """The card.declined v1 body of a card tender the terminal declined."""
    card = tender.card
    assert card is not None
    return {"till": till, "tender": tender.id, "currency": currency, "amount": Money(tender.amount, currency).to_wire(),
            "card": {"reference": card.reference, "terminal": card.terminal,
                     **({"scheme": card.scheme} if card.scheme else {}), **({"masked": card.masked} if card.masked else {})},
            **({"message": tender.message[:200]} if tender.message else {})}


def approved(registry: Registry, till: str, tender: Tender, currency: str) -> bool:
    """Commit card.approved (durable: the hub's intent comes from it whatever else happens), then tell the cards
    actor (the fast path to the hub). False when the outbox did not take it (busy): the till keeps the approval owed
    and commits it again (commit_approval) until it does, so an approval taken offline is never lost."""
    committed = commit_approval(registry, till, tender, currency)
    _tell(registry, "approved", approval(tender, till, currency))
    return committed


def commit_approval(registry: Registry, till: str, tender: Tender, currency: str) -> bool:
    """Commit the tender's card.approved (under its key: committed once however often asked); whether it is."""
    return _commit(registry, "card.approved", approval(tender, till, currency), tender.id)


def ended(registry: Registry, till: str, tender: Tender, currency: str) -> None:
    """A card that ended without an approval: a decline is committed (card.declined: the hub keeps the attempt), and
    an offline reservation is freed."""
    if tender.state == "declined":
        _commit(registry, "card.declined", declined(tender, till, currency), tender.id)
    if tender.card is not None and tender.card.offline:
        _tell(registry, "ended", tender.id)


def _commit(registry: Registry, event_type: str, body: dict[str, Any], tender_id: str) -> bool:
    try:
        committed = registry.ask("outbox", "append", event_type, 1, body, key=f"{event_type}:{tender_id}",
                                 timeout=30.0)
    except pykka.Timeout:
        committed = Rejected("busy", "the outbox did not answer in 30 s")
    if isinstance(committed, Rejected):
        log.error("till %s: %s of card tender %s was not committed (%s)", body["till"], event_type, tender_id,
                  committed.message)
        return False
    registry.tell("forwarder", "kick")
    return True


def abandoned(registry: Registry, tender: Tender, by: str) -> None:
    """An approved card given back (its sale or tender voided): cancelled at the hub too."""
    _tell(registry, "abandoned", tender.id, f"till-user:{by}")


def refund_through_hub(registry: Registry, original_reference: str | None, amount_minor: int, refund_id: str,
                       cashier: str, reason: str, asked_before: bool = False) -> dict[str, Any] | Unconfirmed | None:
    """Refund `amount_minor` to the card of the original payment through the hub: the return's card_refund once the
    hub's refund succeeded; None when the till must refund at its terminal (the hub refunded nothing); Unconfirmed
    when it may have refunded (`asked_before`: an earlier ask was not confirmed): ask again under the same key."""
    if original_reference is None:
        return None
    try:
        tender_id = str(uuid.UUID(hex=original_reference))
    except ValueError:  # a payment from before the till's references were tender ids
        return None
    try:
        answer = registry.ask(CARDS, "refund", tender_id, amount_minor, refund_id, f"till-user:{cashier}", reason,
                              asked_before, timeout=REFUND_WAIT_S)
    except LookupError:
        return NOT_ASKED if asked_before else None
    except pykka.Timeout:
        return Unconfirmed("conflict", "the store's card service is busy: complete the return again (the card is "
                                       "refunded once)")
    except Exception:  # the cards actor failed on it, maybe after the hub refunded: asked again, never elsewhere
        log.exception("refund %s: the cards actor failed", refund_id)
        return Unconfirmed("conflict", "the store's card service failed: complete the return again (the card is "
                                       "refunded once)")
    if answer is None or isinstance(answer, Unconfirmed):
        return answer
    intent = answer.get("intent")
    intent = intent if isinstance(intent, dict) else {}
    return {"id": refund_id, "amount": amount_minor, "reference": uuid.UUID(refund_id).hex,
            "original_reference": original_reference, "scheme": _shown(intent.get("scheme"), "card"),
            "masked": _shown(intent.get("masked"), "****")}


def _shown(value: Any, default: str) -> str:
    """A card's scheme or masked number from the hub as the return's event may carry it; `default` otherwise."""
    try:
        return validators.text("the hub's card detail", value, max_length=32)
    except validators.Invalid:
        return default


def _tell(registry: Registry, method: str, *args: Any) -> None:
    try:
        registry.tell(CARDS, method, *args)
    except LookupError:
        pass  # a tree without the cards actor (a test's): the outbox's events carry the news
