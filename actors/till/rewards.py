"""A till's points and gift card tenders and the hub: redeeming, giving back and refunding (novapos.wire.loyalty).

Points: online the hub takes them (`points_redeem`, idempotent on the redemption id); while the hub cannot be
reached they are taken offline within the store's budget and the customer's cap of points the hub has not
received yet (actors.loyalty.local, from the `loyalty_settings` the hub last gave), and the sale carries `points.offline = true` for the hub to debit
when it arrives. A gift card is online only: a bearer instrument with no owner to recover a double spend from, so
offline it is refused ("gift cards need the hub").

The redemption id is derived from the tender's id, so a resent tender asks the hub about the same redemption: a
lost answer (the request may have reached the hub) is never a second redemption. Such an answer is Unconfirmed:
the till owes the hub a reversal of that redemption (saved with the till, asked again until the hub confirms it),
which a successful retry of the same tender cancels. The reversal is owed (and saved) *before* the hub is asked
(the caller's `asking`), so a till that dies between the hub taking the points and the till saving its answer finds
it owed after the restart: the hub keeps a held redemption until a sale uses it or the till gives it back, so only
the till can. A 5xx from the hub is Unconfirmed too (its answer may be what failed). A redemption given back (a
void, a removed tender) is owed the same way; one taken offline is only struck from the store's ledger (the hub
never heard of it).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter, Gauge

from actors.loyalty import local
from actors.payments.asking import HubRefused, HubUnreachable, PaymentsHub, Unconfirmed
from actors.protocol import Rejected
from actors.till.cart import Cart
from actors.till.tenders import GiftCard, Points, Tender
from novapos import validators
from novapos.money import Money
from novapos.wire.loyalty import (
    GIFT_CARD_REDEEM,
    GIFT_CARD_REFUND,
    GIFT_CARD_REVERSE,
    LOYALTY_SETTINGS,
    POINTS_REDEEM,
    POINTS_REVERSE,
)

log = logging.getLogger(__name__)

ASK_WITHIN_S = 3.0
SETTINGS_FRESH_S = 600.0
"""Loyalty settings younger than this are used as kept; older ones are asked again (the cache serves offline)."""
UNCONFIRMED_GRACE_S = 60.0
"""An unconfirmed redemption is not reversed before this: the cashier's retry of the same tender may confirm it."""
RETRY_S = 5.0
GIFT_CARDS_NEED_THE_HUB = ("gift cards need the hub: the store is offline, so a gift card cannot be taken now "
                           "(take another tender)")
NO_SETTINGS = ("the store has not learnt the loyalty program's settings from the hub yet, so points cannot be "
               "taken offline: take another tender")
NOT_CONFIRMED = "the hub did not confirm the {what} in time: try the same tender again ({what} is taken once)"

REDEMPTIONS = Counter("novapos_edge_loyalty_redemptions_total", "Points and gift card tenders asked at the tills, by "
                      "method and outcome (online, offline, refused, unconfirmed)", ["method", "outcome"])
REVERSALS = Counter("novapos_edge_loyalty_reversals_total", "Redemptions given back, by method and how (hub: "
                    "confirmed by the hub; local: an offline one struck from the store's ledger)", ["method", "how"])
OWED = Gauge("novapos_edge_loyalty_reversals_owed", "Reversals the tills owe the hub and have not had confirmed",
             ["till"])

Kind = Literal["points", "gift_card"]


def redemption_for(tender_id: str) -> str:
    """The redemption id of a points or gift card tender: derived, so a resend asks about the same redemption."""
    return str(uuid.uuid5(uuid.UUID(tender_id), "redemption"))


@dataclass
class Owed:
    """A redemption the hub must give back (its sale will not complete): saved with the till until confirmed."""
    kind: Kind
    redemption: str
    by: str
    reason: str
    next_try: float = 0.0  # time.time() before which it is not asked
    failures: int = 0

    def to_saved(self) -> dict[str, Any]:
        return {"kind": self.kind, "redemption": self.redemption, "by": self.by, "reason": self.reason,
                "next_try": self.next_try}


def restore_owed(saved: Any, problems: list[str]) -> list[Owed]:
    owed: list[Owed] = []
    for index, raw in enumerate(saved if isinstance(saved, list) else []):
        where = f"saved loyalty reversal {index}"
        try:
            if not isinstance(raw, dict) or raw.get("kind") not in ("points", "gift_card"):
                raise validators.Invalid(where, "must be an object of kind points or gift_card")
            owed.append(Owed(raw["kind"], validators.uuid_text(f"{where} redemption", raw.get("redemption")),
                             validators.text(f"{where} by", raw.get("by")),
                             validators.text(f"{where} reason", raw.get("reason"), max_length=200),
                             float(validators.integer(f"{where} next_try", int(raw.get("next_try", 0)), 0,
                                                      validators.MAX_BIGINT))))
        except (validators.Invalid, TypeError, ValueError) as exc:
            problems.append(str(exc))
    return owed


def settings(hub: PaymentsHub | None, db: sqlite3.Connection, currency: str) -> local.Settings | None:
    """The loyalty settings: asked of the hub when the kept ones are older than SETTINGS_FRESH_S (and kept), else
    (or when the hub does not answer) as kept; None when the store never had them in its currency."""
    age = local.settings_age_s(db)
    if hub is not None and (age is None or age > SETTINGS_FRESH_S):
        try:
            answer = hub.ask(LOYALTY_SETTINGS, {}, ASK_WITHIN_S)
            given = local.Settings(
                validators.integer("point_value_minor", answer.get("point_value_minor"), 1, validators.MAX_MINOR),
                validators.currency("currency", answer.get("currency")),
                validators.integer("offline_store_budget_points", answer.get("offline_store_budget_points"), 0,
                                   validators.MAX_BIGINT),
                validators.integer("offline_customer_cap_points", answer.get("offline_customer_cap_points"), 0,
                                   validators.MAX_BIGINT))
            local.keep_settings(db, given)
        except (HubUnreachable, HubRefused) as exc:
            log.info("loyalty settings not refreshed from the hub (%s): the kept ones serve", exc)
        except validators.Invalid as exc:
            log.warning("the hub's loyalty settings were refused: %s", exc)
    return local.settings(db, currency)


def _said(exc: HubRefused) -> str:
    return str(exc) if validators.is_text(str(exc), 300) else validators.describe(str(exc))


def _maybe_done(exc: HubRefused, kind: Kind) -> Unconfirmed | None:
    """A 5xx refusal of a redemption: the hub's side failed, perhaps after taking it (an answer it could not send or
    the till could not read is 502), so it is Unconfirmed, owed back after the grace; a 4xx took nothing (None)."""
    if exc.code < 500:
        return None
    REDEMPTIONS.labels(kind, "unconfirmed").inc()
    log.warning("the hub failed on a %s redemption (%s): owed back unless the same tender confirms it", kind,
                _said(exc))
    return Unconfirmed("conflict", NOT_CONFIRMED.format(what="points" if kind == "points" else "gift card"))


def redeem_points(hub: PaymentsHub | None, db: sqlite3.Connection, cart: Cart, amount_minor: int, tender_id: str,
                  till: str, actor: str, asking: Callable[[], None]) -> Tender | Rejected:
    """A points tender worth at most `amount_minor` (what whole points buy) for the cart's customer: online through
    the hub, offline within the store's budget and the customer's cap. Unconfirmed when the hub may have taken the
    points without saying so (the caller owes their reversal until a retry confirms them). `asking` is called just
    before the hub is asked (the caller saves the reversal as owed, in case it never hears the answer)."""
    if cart.customer is None:
        return Rejected("conflict", "attach the customer first: points are redeemed from their account")
    if (refused := cart.may_redeem(amount_minor, "points")) is not None:
        return refused
    given = settings(hub, db, cart.currency)
    if given is None:
        REDEMPTIONS.labels("points", "refused").inc()
        return Rejected("conflict", NO_SETTINGS)
    points = amount_minor // given.point_value_minor
    if points < 1:
        return Rejected("invalid", f"a point is worth {Money(given.point_value_minor, cart.currency).format()}: "
                                   f"{Money(amount_minor, cart.currency).format()} buys no whole point")
    value, redemption = points * given.point_value_minor, redemption_for(tender_id)
    try:
        if hub is None:
            raise HubUnreachable("the till has no link to the hub")
        asking()
        answer = hub.ask(POINTS_REDEEM, {"redemption": redemption, "customer": cart.customer, "points": points,
                                         "till": till, "actor": actor}, ASK_WITHIN_S)
    except HubUnreachable as exc:
        if exc.maybe_done:
            REDEMPTIONS.labels("points", "unconfirmed").inc()
            return Unconfirmed("conflict", NOT_CONFIRMED.format(what="points"))
        return _offline_points(db, given, cart, points, value, tender_id, redemption, till)
    except HubRefused as exc:
        if (unsure := _maybe_done(exc, "points")) is not None:
            return unsure
        REDEMPTIONS.labels("points", "refused").inc()
        return Rejected("conflict", f"the hub refused the points: {_said(exc)}")
    try:
        balance = validators.integer("balance", answer.get("balance"), -validators.MAX_BIGINT, validators.MAX_BIGINT)
        taken = validators.integer("value_minor", answer.get("value_minor"), 1, validators.MAX_MINOR)
    except validators.Invalid as exc:
        return Unconfirmed("conflict", f"the hub's answer to the points could not be used ({exc}): try again")
    if taken != value:
        return Unconfirmed("conflict", f"the hub valued {points} points at {taken}, not {value}: call support")
    local.set_points(db, cart.customer, balance)
    REDEMPTIONS.labels("points", "online").inc()
    tender = Tender(tender_id, "points", value, "approved", message=f"{points} points redeemed",
                    points=Points(cart.customer, points, redemption, False, balance))
    cart.tenders.items.append(tender)
    return tender


def _offline_points(db: sqlite3.Connection, given: local.Settings, cart: Cart, points: int, value: int,
                    tender_id: str, redemption: str, till: str) -> Tender | Rejected:
    assert cart.customer is not None
    refused = local.redeem_offline(db, given, redemption, till, cart.customer, points)
    if refused is not None:
        REDEMPTIONS.labels("points", "refused").inc()
        return Rejected("conflict", refused)
    known = local.cached(db, cart.customer)
    balance = None if known is None else known.points - points
    if balance is not None:
        local.set_points(db, cart.customer, balance)
    REDEMPTIONS.labels("points", "offline").inc()
    log.info("till %s: %d points redeemed offline under redemption %s", till, points, redemption)
    tender = Tender(tender_id, "points", value, "approved", message=f"{points} points redeemed offline",
                    points=Points(cart.customer, points, redemption, True, balance))
    cart.tenders.items.append(tender)
    return tender


def redeem_gift_card(hub: PaymentsHub | None, cart: Cart, card: str, amount_minor: int, tender_id: str, till: str,
                     actor: str, asking: Callable[[], None]) -> Tender | Rejected:
    """A gift card tender of `amount_minor` through the hub (never offline); Unconfirmed and `asking` as for
    points."""
    if (refused := cart.may_redeem(amount_minor, "gift_card")) is not None:
        return refused
    redemption = redemption_for(tender_id)
    try:
        if hub is None:
            raise HubUnreachable("the till has no link to the hub")
        asking()
        answer = hub.ask(GIFT_CARD_REDEEM, {"card": card, "redemption": redemption, "amount_minor": amount_minor,
                                            "currency": cart.currency, "till": till, "actor": actor}, ASK_WITHIN_S)
    except HubUnreachable as exc:
        if exc.maybe_done:
            REDEMPTIONS.labels("gift_card", "unconfirmed").inc()
            return Unconfirmed("conflict", NOT_CONFIRMED.format(what="gift card"))
        REDEMPTIONS.labels("gift_card", "refused").inc()
        return Rejected("conflict", GIFT_CARDS_NEED_THE_HUB)
    except HubRefused as exc:
        if (unsure := _maybe_done(exc, "gift_card")) is not None:
            return unsure
        REDEMPTIONS.labels("gift_card", "refused").inc()
        return Rejected("conflict", f"the hub refused the gift card: {_said(exc)}")
    try:
        taken = validators.integer("amount_minor", answer.get("amount_minor"), 1, validators.MAX_MINOR)
        balance = validators.minor_units("balance_minor", answer.get("balance_minor"))
        masked = validators.text("card", answer.get("card") or local.mask(card), max_length=32)
    except validators.Invalid as exc:
        return Unconfirmed("conflict", f"the hub's answer to the gift card could not be used ({exc}): try again")
    if taken != amount_minor:
        return Unconfirmed("conflict", f"the hub took {taken} off the gift card, not {amount_minor}: call support")
    REDEMPTIONS.labels("gift_card", "online").inc()
    tender = Tender(tender_id, "gift_card", amount_minor, "approved",
                    message=f"gift card {masked}: {Money(balance, cart.currency).format()} left",
                    gift_card=GiftCard(masked, redemption, balance))
    cart.tenders.items.append(tender)
    return tender


def give_back(db: sqlite3.Connection, tenders: list[Tender], by: str, reason: str) -> list[Owed]:
    """The redemptions of `tenders` given back: an offline one struck from the store's ledger now, the others owed
    to the hub (returned, for the till to save and ask). Each tender is `reversed`."""
    owed: list[Owed] = []
    for tender in tenders:
        if tender.points is not None and tender.points.offline:
            local.give_back_offline(db, tender.points.redemption)
            if tender.points.balance is not None:
                local.set_points(db, tender.points.customer, tender.points.balance + tender.points.points)
            REVERSALS.labels("points", "local").inc()
        elif tender.points is not None:
            owed.append(Owed("points", tender.points.redemption, by, reason))
        elif tender.gift_card is not None:
            owed.append(Owed("gift_card", tender.gift_card.redemption, by, reason))
        else:
            continue
        tender.state, tender.message = "reversed", "given back"
    return owed


def reverse(hub: PaymentsHub | None, owed: Owed) -> bool:
    """Ask the hub to give back one owed redemption; True once it has (or never had it: 404), or refuses for good
    (409: part of a completed sale, logged for support); False to ask again later."""
    if hub is None:
        return False
    kind = POINTS_REVERSE if owed.kind == "points" else GIFT_CARD_REVERSE
    try:
        hub.ask(kind, {"redemption": owed.redemption, "actor": owed.by, "reason": owed.reason},
                ASK_WITHIN_S)
    except HubUnreachable:
        return False
    except HubRefused as exc:
        if exc.code == 404:
            REVERSALS.labels(owed.kind, "hub").inc()
            return True  # the hub never took it (an unconfirmed redemption that did not arrive)
        if exc.code == 409:
            log.error("the hub will not reverse %s redemption %s: %s (support decides)", owed.kind, owed.redemption,
                      _said(exc))
            return True
        owed.failures += 1
        owed.next_try = time.time() + RETRY_S
        return False
    REVERSALS.labels(owed.kind, "hub").inc()
    return True


def refund_gift_card(hub: PaymentsHub | None, card: str, redemption: str, amount_minor: int, currency: str,
                     till: str, actor: str, order: str | None) -> dict[str, Any] | Rejected:
    """Put `amount_minor` back on a gift card (a return of a sale it paid): the return's refund {card, redemption,
    balance_minor}; refused offline (the card's balance lives at the hub), Unconfirmed when it may have happened."""
    if order is None:  # the hub caps a gift card refund at what the original order's gift card tenders took
        return Rejected("conflict", "a return without its original sale cannot be refunded to a gift card: refund "
                                    "another way")
    body: dict[str, Any] = {"card": card, "redemption": redemption, "amount_minor": amount_minor,
                            "currency": currency, "till": till, "actor": actor, "order": order}
    try:
        if hub is None:
            raise HubUnreachable("the till has no link to the hub")
        answer = hub.ask(GIFT_CARD_REFUND, body, ASK_WITHIN_S)
        balance = validators.minor_units("balance_minor", answer.get("balance_minor"))
        masked = validators.text("card", answer.get("card") or local.mask(card), max_length=32)
    except HubUnreachable as exc:
        if exc.maybe_done:
            return Unconfirmed("conflict", NOT_CONFIRMED.format(what="gift card refund"))
        return Rejected("conflict", "a refund to a gift card needs the hub, and the store is offline: refund in cash "
                                    "instead, or wait for the hub")
    except HubRefused as exc:
        if exc.code >= 500:  # the hub's side failed, perhaps after the refund was made
            return Unconfirmed("conflict", NOT_CONFIRMED.format(what="gift card refund"))
        return Rejected("conflict", f"the hub refused the refund to the gift card: {_said(exc)}")
    except validators.Invalid as exc:
        return Unconfirmed("conflict", f"the hub's answer to the gift card refund could not be used ({exc})")
    return {"card": masked, "redemption": redemption, "balance_minor": balance}
