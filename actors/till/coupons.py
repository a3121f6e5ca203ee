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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
    request: dict[str, Any] = {"code": code, "redemption": redemption, "till": till, "actor": actor}
    if customer is not None:
        request["customer"] = customer
    why_offline = f"till {till} has no link to the hub"
    if hub is not None:
        try:
            answer = hub.ask(COUPON_RESERVE, request, RESERVE_WITHIN_S)
            coupon = saved_coupon("the hub's coupon", {**answer, "code": code, "offline": False})
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
