"""Coupon codes at the till: reserved at the hub (coupon_reserve) while the store is online, a promotion's public code
accepted offline, and releases (coupon_release) owed until the hub confirms them.

A code is asked of the hub first, under a redemption id the till makes (the hub is idempotent on it): the hub knows
single-use and multi-use codes, their limits, expiry and per-customer limits, and two stores asking for one
single-use code at once get one reservation between them. When the hub cannot be reached, a hub code is refused
with a sentence (nobody could tell whether another store used it meanwhile), and only a public code of a code_only
promotion in the local copy is accepted, marked offline: the hub counts its use when the sale arrives.

A reservation the sale will not use (the cart voided, the coupon taken off, its promotion gave nothing at the
checkout, or an ask that timed out and may have reserved) is released: the till saves it as owed and asks again
every RETRY_S until the hub confirms, across restarts (the hub would release it after its hold time anyway; the
release gives the code back at once).

Holds: the till sends its clock (`till_ms`) with each coupon_reserve, and the hub answers when the hold ends on that
clock (`held_until_ms`). The hub's sweeper releases a hold only after that deadline AND once the store has delivered
an event stamped after it (a sale using the coupon would have arrived first). So a sale completing after the deadline
renews the hold first (the same coupon_reserve under the same redemption id); when the hub cannot be reached then,
the coupon is dropped from the cart with a sentence, and the cashier completes without it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from actors.payments.asking import HubRefused, HubUnreachable, PaymentsHub
from actors.protocol import Rejected
from actors.till.promoting import COUPONS, Coupon, Pricing, public_coupon, saved_coupon
from novapos import coupon_codes, validators
from novapos.wire.ids import uuid7
from novapos.wire.loyalty import COUPON_RELEASE, COUPON_RESERVE

log = logging.getLogger(__name__)

RESERVE_WITHIN_S = 3.0
RELEASE_WITHIN_S = 3.0
RETRY_S = 5.0
RENEW_MARGIN_MS = 30_000
"""A hold ending within this of a sale's completion is renewed first (the sale's ts comes a moment later)."""
OFFLINE = "this coupon needs the hub: try again when the store is online"


@dataclass
class Release:
    """A coupon reservation owed back to the hub, saved with the till until the hub confirms it."""
    coupon: Coupon
    by: str
    reason: str
    next_try: float = 0.0  # time.monotonic() before which it is not asked again
    failures: int = 0

    def to_saved(self) -> dict[str, Any]:
        return {"coupon": self.coupon.to_wire(), "by": self.by, "reason": self.reason}


def saved_release(where: str, raw: Any) -> Release:
    if not isinstance(raw, dict):
        raise validators.Invalid(where, "must be an object {coupon, by, reason}")
    return Release(saved_coupon(f"{where} coupon", raw.get("coupon")), validators.text(f"{where} by", raw.get("by")),
                   validators.text(f"{where} reason", raw.get("reason"), max_length=200))


def checked_code(raw: Any) -> str:
    """A code as a cashier typed or scanned it, normalised as the hub does (novapos.coupon_codes); Invalid for
    anything that cannot be one, before the hub is asked."""
    return coupon_codes.normalise("code", raw)


def reserve(hub: PaymentsHub | None, rules: Pricing, code: str, till: str, actor: str,
            customer: str | None) -> Coupon | Release | Rejected:
    """The coupon for `code`: reserved at the hub, or (the hub unreachable) one of a promotion's public codes
    accepted offline. A Release when the hub did not answer in time and may have reserved it (the caller owes it
    back and refuses the coupon for now). Blocks the caller for the hub's answer (at most RESERVE_WITHIN_S)."""
    redemption = str(uuid7())
    request: dict[str, Any] = {"code": code, "redemption": redemption, "till": till, "actor": actor,
                               "till_ms": _now_ms()}
    if customer is not None:
        request["customer"] = customer
    why_offline = f"till {till} has no link to the hub"
    if hub is not None:
        try:
            answer = hub.ask(COUPON_RESERVE, request, RESERVE_WITHIN_S)
            coupon = _held(answer, code)
        except HubUnreachable as exc:
            if exc.maybe_done:  # the hub may hold a use of the code for this redemption: give it back
                return Release(Coupon(code, "unknown", redemption, False), actor, "the reservation was not confirmed")
            why_offline = str(exc)
        except HubRefused as exc:
            COUPONS.labels(till, "refused").inc()
            return Rejected("conflict" if exc.code != 404 else "not_found",
                            f"coupon {code}: {validators.describe(str(exc))}" if exc.code in (404, 409)
                            else f"the hub refused coupon {code}: {validators.describe(str(exc))}")
        except validators.Invalid as exc:
            log.warning("till %s: the hub's answer to coupon_reserve was refused: %s", till, exc)
            return Release(Coupon(code, "unknown", redemption, False), actor, "the hub's answer could not be used")
        else:
            if coupon.redemption != redemption:
                log.warning("till %s: the hub answered coupon_reserve with another redemption", till)
                return Release(coupon, actor, "the hub answered another redemption")
            COUPONS.labels(till, "reserved").inc()
            return coupon
    promotion = public_coupon(rules, code)
    if promotion is None:
        COUPONS.labels(till, "refused").inc()
        log.info("till %s: coupon refused offline (%s)", till, why_offline)
        return Rejected("conflict", OFFLINE)
    COUPONS.labels(till, "offline").inc()
    return Coupon(code, promotion.id, redemption, True)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _held(answer: dict[str, Any], code: str) -> Coupon:
    """The hub's reservation as the cart's coupon, with the hold's end on this till's clock."""
    coupon = saved_coupon("the hub's coupon", {**answer, "code": code, "offline": False})
    until = answer.get("held_until_ms")
    return replace(coupon, held_until_ms=None if until is None else validators.integer(
        "the hub's held_until_ms", until, 0, 2**53))


def needs_renewal(coupon: Coupon) -> bool:
    """Whether the hub's hold of `coupon` may have ended (or its end is unknown) before a sale completes now: the hub
    may then release it once the store sends a later event, so the till renews it first."""
    return not coupon.offline and (coupon.held_until_ms is None or _now_ms() + RENEW_MARGIN_MS >= coupon.held_until_ms)


def renew(hub: PaymentsHub | None, coupon: Coupon, till: str, actor: str, customer: str | None) -> Coupon | Rejected:
    """Ask the hub again for `coupon`'s use under the same redemption id (which extends its hold, or takes the use
    again if the hub had released it): the renewed coupon, or Rejected with a sentence (the caller drops it)."""
    request: dict[str, Any] = {"code": coupon.code, "redemption": coupon.redemption, "till": till, "actor": actor,
                               "till_ms": _now_ms()}
    if customer is not None:
        request["customer"] = customer
    why = f"coupon {coupon.code} was taken off the sale: its hold at the hub ended"
    if hub is None:
        return Rejected("conflict", f"{why} and the hub cannot be reached now; check the total and complete again")
    try:
        renewed = _held(hub.ask(COUPON_RESERVE, request, RESERVE_WITHIN_S), coupon.code)
    except HubUnreachable:
        return Rejected("conflict", f"{why} and the hub cannot be reached now; check the total and complete again")
    except HubRefused as exc:
        return Rejected("conflict", f"{why} and the hub refused it again ({validators.describe(str(exc))}); check "
                                    "the total and complete again")
    except validators.Invalid as exc:
        log.warning("till %s: the hub's answer to a coupon renewal was refused: %s", till, exc)
        return Rejected("conflict", f"{why} and the hub's answer could not be used; check the total and complete "
                                    "again")
    COUPONS.labels(till, "renewed").inc()
    return replace(coupon, held_until_ms=renewed.held_until_ms)


def release(hub: PaymentsHub | None, owed: Release, till: str) -> bool:
    """Ask the hub to release one owed reservation; True when it is settled (released, or the hub says there is
    nothing to release), False to try again later."""
    if owed.coupon.offline:
        return True  # a public code accepted offline holds nothing at the hub
    if hub is None:
        return False
    try:
        hub.ask(COUPON_RELEASE, {"redemption": owed.coupon.redemption, "actor": owed.by, "reason": owed.reason},
                RELEASE_WITHIN_S)
    except HubUnreachable:
        return False
    except HubRefused as exc:
        if exc.code in (404, 409):  # never reserved, or already part of a completed sale: nothing to give back
            log.warning("till %s: coupon release %s needs nothing: %s", till, owed.coupon.redemption, exc)
            return True
        return False
    COUPONS.labels(till, "released").inc()
    return True
