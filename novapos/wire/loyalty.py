"""Customers, loyalty, coupons and gift cards between a store and the hub: the store's requests.

A store asks on its own subjects, novapos.<tenant>.<store>.req.<kind> (one kind per operation, KINDS), so the hub
knows who asks and answers only within that store's tenant. Requests and answers are JSON objects (encoded and
decoded like the payment requests: novapos.wire.payments.encode/decode); a refusal is
{"refused": {"code": 402|404|409|503, "message": "...a sentence for the cashier..."}}, a malformed request the
hub's 400 reply. What each holds:

- customer_find {query}: a phone, an email or a loyalty card number -> {"customers": [profile...]} (at most 10).
  A profile is {id, card_number, name, phone, email, tier, points, home_store, erased} (what a till shows).
- customer_create {name, phone?, email?, card_number?, actor, request?}: enrol at the till -> {"customer": profile}.
  `request` is a UUID the till makes once per enrolment and keeps across its retries (a retry after a timeout may
  follow a request that reached the hub): the hub answers the same customer for the same (tenant, request), so a
  person is never enrolled twice by one enrolment. Without it every request enrols.
- customer_360 {customer} -> {"customer": profile, "loyalty": {points, tier, multiplier_ppm, spend_12m_minor,
  next_tier?, expiring: [{points, expires_at}]}, "orders": [{order, store, at, total_minor, currency}...],
  "preferences": {...}}.
- points_redeem {redemption, customer, points, till, actor}: take points now (online) -> {"redemption": id,
  "points": n, "balance": n, "value_minor": n, "currency"}; idempotent on `redemption` (the same request answers
  the same; another with that id is 409); too few points is 409 with the balance in the sentence.
- points_reverse {redemption, actor, reason}: give back a redemption whose sale did not complete (a void) ->
  {"redemption", "reversed": true}; idempotent; a redemption already part of a completed sale is 409.
- loyalty_settings {} -> {"point_value_minor", "currency", "offline_store_budget_points",
  "offline_customer_cap_points", "earn": {...}, "tiers": [...]}: what the store keeps for offline redemption.
- coupon_reserve {code, redemption, customer?, till, actor, till_ms?}: hold one use of a code for this sale ->
  {"redemption", "promotion", "code", "held_until_ms"?}; 404 unknown code or customer, 409 used up / expired / the
  customer's limit reached. Idempotent on `redemption` (asked again with a later till_ms: the hold is extended);
  held_until_ms is the hold's end on the till's clock (till_ms + the hold), after which the till renews it before
  completing a sale: the hub releases a hold once its store delivered an event stamped after that end.
- coupon_release {redemption, actor}: the sale did not complete -> {"released": true}; idempotent.
- gift_card_balance {card} -> {"card": masked, "balance_minor", "currency", "expires_at"?, "active"}.
- gift_card_redeem {card, redemption, amount_minor, currency, till, actor}: take money off the card now ->
  {"redemption", "card": masked, "amount_minor", "balance_minor"}; idempotent on `redemption`; 402 when the
  balance is short (the sentence says what is left).
- gift_card_reverse {redemption, actor, reason}: give back a redemption whose sale did not complete; idempotent (an
  id the hub has not seen is recorded reversed: its redeem arriving later is refused).
- gift_card_refund {card, redemption, amount_minor, currency, till, actor, order}: put money back on a card (a
  return of `order` refunded to the gift card it was paid with) -> {"redemption", "card", "balance_minor"};
  idempotent; capped at what the order's gift card tenders took.

A card number is never logged or stored whole outside hub.giftcards: events and receipts carry it masked.
"""

from __future__ import annotations

from typing import Any

from novapos import validators
from novapos.wire.subjects import request_subject

CUSTOMER_FIND = "customer_find"
CUSTOMER_CREATE = "customer_create"
CUSTOMER_360 = "customer_360"
POINTS_REDEEM = "points_redeem"
POINTS_REVERSE = "points_reverse"
LOYALTY_SETTINGS = "loyalty_settings"
COUPON_RESERVE = "coupon_reserve"
COUPON_RELEASE = "coupon_release"
GIFT_CARD_BALANCE = "gift_card_balance"
GIFT_CARD_REDEEM = "gift_card_redeem"
GIFT_CARD_REVERSE = "gift_card_reverse"
GIFT_CARD_REFUND = "gift_card_refund"
KINDS = (CUSTOMER_FIND, CUSTOMER_CREATE, CUSTOMER_360, POINTS_REDEEM, POINTS_REVERSE, LOYALTY_SETTINGS,
         COUPON_RESERVE, COUPON_RELEASE, GIFT_CARD_BALANCE, GIFT_CARD_REDEEM, GIFT_CARD_REVERSE, GIFT_CARD_REFUND)

MAX_TIER_NAME = 40


def tier_name(where: str, value: Any) -> str:
    """A loyalty tier's name, as an administrator may give it in the program (hub.loyalty.program) and as a till
    keeps it (a saved cart's tier): printable text of at most MAX_TIER_NAME characters ("Gold", "Very Important").
    One check on both sides, so a name the hub accepts always survives at the till."""
    return validators.text(where, value, max_length=MAX_TIER_NAME)


def loyalty_request_subject(tenant: str, store: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"no customer or loyalty request {kind!r}")
    return request_subject(tenant, store, kind)


def responder_subject(kind: str) -> str:
    """The hub's subscription for one kind, every store of every tenant (the responder takes both from it)."""
    if kind not in KINDS:
        raise ValueError(f"no customer or loyalty request {kind!r}")
    return f"novapos.*.*.req.{kind}"
