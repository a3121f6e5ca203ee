"""Promotions and coupons in a till's cart: what the cart is priced with (Pricing), the coupons it holds, and the one
call into the engine (novapos.promotions), timed and counted.

The cart (actors.till.cart) asks its `source` for Pricing at every change of its lines, discounts, coupons or
customer and re-evaluates: the promotions in force in the store's local copy (actors.catalog.local, offline too)
at that moment, with their catalog version. Between changes nothing moves: a promotion that starts, ends or
changes while a cart is open takes effect at that cart's next change, like a price at the next scan. From the
first tender on the cart is frozen (its lines cannot change), so the customer pays what the screen showed; the sale
carries the version the last evaluation used (promotions_version), so the hub's replay validation can tell a copy
that was behind.

Lines with a price override get no promotion (the override is the price); a line discount comes after the
promotions (its percentage is of what they left) and the order discount last (sale.completed v5).

Coupons: a code is reserved at the hub (coupon_reserve) while the store is online; offline, only a promotion's
public code (distributed with the catalog) is accepted, marked offline: the hub counts it when the sale arrives.
A coupon held by a cart that is voided, or taken off, or whose promotion gave nothing by the checkout, is
released (coupon_release), owed durably by the till until the hub confirms.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram

from novapos import coupon_codes, validators
from novapos import promotions as engine
from novapos.wire.schemas import MAX_PROMOTIONS_PER_LINE

EVALUATIONS = Histogram("novapos_edge_promotion_evaluation_seconds", "One evaluation of a cart's promotions",
                        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
DISCOUNTS = Counter("novapos_edge_promotion_discount_minor_total",
                    "Minor units taken off by promotions in completed sales", ["till", "currency"])
PROMOTED_SALES = Counter("novapos_edge_promotion_sales_total", "Completed sales with at least one promotion",
                         ["till"])
COUPONS = Counter("novapos_edge_promotion_coupons_total", "Coupons at the till by outcome: reserved (at the hub), "
                  "offline (a public code without the hub), refused, released, release_owed, renewed (a hold "
                  "renewed before its sale completed)", ["till", "outcome"])

MAX_COUPONS = 5
"""Coupons one cart may hold (a till is not a coupon-stacking machine; the engine decides which apply)."""
MAX_CODE_LENGTH = 64
MAX_APPLIED = 64
"""Promotions a saved cart may say were applied (more is not a cart this till saved)."""


@dataclass(frozen=True)
class Pricing:
    """What a cart is priced with: the store's local copy of the promotions (indexed once per catalog version:
    engine.Rules) and its catalog version, for this store and region, at this time."""
    version: int
    rules: engine.Rules
    store: str
    region: str
    at_ms: int


NO_PRICING = Pricing(0, engine.Rules(()), "", "", 0)


@dataclass(frozen=True)
class Coupon:
    """A code the cart holds: its promotion, the hub's redemption id (a fresh one for an offline public code), and
    whether it was accepted without the hub."""
    code: str
    promotion: str
    redemption: str
    offline: bool
    held_until_ms: int | None = field(default=None, compare=False)
    """When the hub's hold ends, on this till's clock (None: unknown, e.g. a restored cart): a sale completing
    after it renews the hold first (actors.till.coupons.renew). Not part of the wire or the saved cart."""

    def to_wire(self) -> dict[str, Any]:
        """The sale.completed v5 coupon (also how a cart saves it)."""
        return {"code": self.code, "promotion": self.promotion, "redemption": self.redemption, "offline": self.offline}


def saved_coupon(where: str, raw: Any) -> Coupon:
    """A saved (or hub-answered) coupon, checked like client input."""
    if not isinstance(raw, dict) or not isinstance(raw.get("offline", False), bool):
        raise validators.Invalid(where, "must be an object {code, promotion, redemption, offline}")
    return Coupon(validators.text(f"{where} code", raw.get("code"), max_length=MAX_CODE_LENGTH),
                  validators.token(f"{where} promotion", raw.get("promotion")),
                  validators.token(f"{where} redemption", raw.get("redemption")), bool(raw.get("offline", False)))


def public_coupon(rules: Pricing, code: str) -> engine.Promotion | None:
    """The code_only promotion in force whose public codes include `code` (the first by priority, then id)."""
    found = [promotion for promotion in rules.rules.promotions if promotion.code_only
             and code in {coupon_codes.canonical(public) for public in promotion.public_codes}]
    return min(found, key=lambda promotion: (-promotion.priority, promotion.id), default=None)


Given = tuple[str, str, int]
"""What one promotion took off one line: (promotion id, name, minor units)."""


@dataclass(frozen=True)
class Priced:
    """An evaluation as the cart keeps it: per line what each promotion took, and the promotions applied."""
    version: int
    lines: Mapping[str, tuple[Given, ...]]
    applied: tuple[engine.Applied, ...]


def evaluate(rules: Pricing, lines: Sequence[engine.CartLine], coupons: Sequence[Coupon], customer: str | None,
             tier: str | None, currency: str) -> Priced:
    """The engine on these lines (those without a price override), timed. A line never carries more than the v5
    wire allows (MAX_PROMOTIONS_PER_LINE): the engine's stacking keeps far fewer."""
    if not len(rules.rules) or not lines:
        return Priced(rules.version, {}, ())
    context = engine.Context(store=rules.store, region=rules.region, at_ms=rules.at_ms,
                             coupons=frozenset(coupon.promotion for coupon in coupons), customer=customer, tier=tier,
                             currency=currency)
    started = time.perf_counter()
    evaluation = engine.evaluate(rules.rules, lines, context)
    EVALUATIONS.observe(time.perf_counter() - started)
    given = {line.line: tuple((promotion, name, amount) for promotion, name, amount in evaluation.for_line(line.line)
                              if amount > 0)[:MAX_PROMOTIONS_PER_LINE] for line in lines}
    return Priced(rules.version, {line: found for line, found in given.items() if found},
                  tuple(applied for applied in evaluation.applied if applied.total > 0))


def sale_version(body: Mapping[str, Any], fallback: int) -> int:
    """The sale.completed version of a checkout body: 5 when the cart made it one (customer, promotion, coupon,
    points or gift card: it carries promotions_version), else `fallback` (v4 with a QR tender, v3)."""
    return 5 if "promotions_version" in body else fallback


def counted(till: str, body: Mapping[str, Any]) -> None:
    """Count a committed sale's promotions (novapos_edge_promotion_*)."""
    off = sum(given["amount"]["minor"] for line in body["lines"] for given in line.get("promotions", ()))
    if off:
        PROMOTED_SALES.labels(till).inc()
        DISCOUNTS.labels(till, body["currency"]).inc(off)


def saved_given(where: str, raw: Any) -> tuple[Given, ...]:
    """A saved line's promotions [[promotion, name, amount]...], checked (the cart checks they fit the line)."""
    if not isinstance(raw, list) or len(raw) > MAX_PROMOTIONS_PER_LINE or not all(
            isinstance(given, list) and len(given) == 3 for given in raw):
        raise validators.Invalid(where, f"must be at most {MAX_PROMOTIONS_PER_LINE} [promotion, name, amount]")
    return tuple((validators.token(f"{where} promotion", promotion), validators.text(f"{where} name", name),
                  validators.minor_units(f"{where} amount", amount, minimum=1)) for promotion, name, amount in raw)


def applied_to_saved(applied: engine.Applied) -> dict[str, Any]:
    return {"promotion": applied.promotion, "name": applied.name, "amounts": dict(applied.amounts),
            "total": applied.total, "explanation": applied.explanation}


def saved_priced(raw: Any) -> Priced:
    """A saved cart's last evaluation {version, applied: [...]}, checked; none saved (an older cart): nothing."""
    if raw is None:
        return Priced(0, {}, ())
    if not isinstance(raw, dict) or not isinstance(raw.get("applied"), list):
        raise validators.Invalid("saved promotions", "must be an object {version, applied}")
    applied = []
    for index, item in enumerate(raw["applied"][:MAX_APPLIED]):
        where = f"saved promotion {index}"
        if not isinstance(item, dict) or not isinstance(item.get("amounts"), dict):
            raise validators.Invalid(where, "must be an object {promotion, name, amounts, total, explanation}")
        amounts = {validators.token(f"{where} line", line): validators.minor_units(f"{where} amount", amount)
                   for line, amount in item["amounts"].items()}
        applied.append(engine.Applied(
            promotion=validators.token(f"{where} promotion", item.get("promotion")),
            name=validators.text(f"{where} name", item.get("name")), amounts=amounts,
            total=validators.minor_units(f"{where} total", item.get("total")),
            explanation=validators.text(f"{where} explanation", item.get("explanation"), max_length=300)))
    version = validators.integer("saved promotions version", raw.get("version"), 0, validators.MAX_BIGINT)
    lines: dict[str, list[Given]] = {}
    for found in applied:
        for line, amount in found.amounts.items():
            lines.setdefault(line, []).append((found.promotion, found.name, amount))
    return Priced(version, {line: tuple(given) for line, given in lines.items()}, tuple(applied))
