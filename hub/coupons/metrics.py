"""The hub's coupon figures on /metrics (per process: each hub counts what it did)."""

from __future__ import annotations

from prometheus_client import Counter

RESERVATIONS = Counter("novapos_hub_coupon_reservations_total",
                       "coupon_reserve requests by result (held, again: the same redemption asked again, unknown, "
                       "used_up, expired, blocked, customer_limit, needs_customer, conflict, ended: its promotion ended, "
                       "unknown_customer)", ["result"])
RELEASES = Counter("novapos_hub_coupon_releases_total",
                   "Held coupon uses given back, by why (void: the till's coupon_release; expired: the hold ended "
                   "with no sale)", ["why"])
USES = Counter("novapos_hub_coupon_uses_total",
               "Coupon uses confirmed by a completed sale, by how (held: reserved then sold; late: its hold had "
               "ended; unknown: a redemption the hub never held; offline: a promotion's public code taken offline; reused: a use a sale had used already, named "
               "again by another sale or coupon: honoured once, wants a person)",
               ["how"])
