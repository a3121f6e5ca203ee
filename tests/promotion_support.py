"""Random promotion sets with overlapping rules and random carts over one small catalog, seeded: for the
engine's property tests, bench/promotions.py and the edge-versus-hub agreement test. Every kind, target,
condition, scope and stacking appears, and targets overlap on purpose (a SKU, its category, the category
above it, everything)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from novapos.promotions import CartLine, Context, Promotion, Target, checked

CATEGORIES = ("food", "food/dairy", "food/dairy/cheese", "food/dairy/milk", "food/bakery", "drink", "drink/soft",
              "home", "home/clean", "")
"""Item categories ("" for an item with none, as an old hub's)."""
STORES = ("store-001", "store-002", "store-003")
REGIONS = ("north", "south")
REGION_OF = {"store-001": "north", "store-002": "north", "store-003": "south"}
"""The stores' regions, as tests/stock_world.py has them."""
TIERS = ("silver", "gold")
TIMEZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata")
DAY_MS = 86_400_000
START_MS = 1_780_000_000_000
"""Carts fall within the 30 days from here (mid 2026)."""


@dataclass(frozen=True)
class Product:
    sku: str
    category: str
    unit_minor: int


def products(count: int = 60, seed: int = 7) -> list[Product]:
    rng = random.Random(seed)
    return [Product(f"SKU-{number:03d}", CATEGORIES[number % len(CATEGORIES)], rng.choice((0, 1, 5, 99, 100, 249))
                    + rng.randrange(1, 3000)) for number in range(count)]


def _target(rng: random.Random, catalog: list[Product], everything: float = 0.15) -> Target:
    if rng.random() < everything:
        return Target()
    skus = frozenset(rng.choice(catalog).sku for _ in range(rng.choice((0, 1, 1, 2, 4))))
    categories = frozenset(rng.choice([c for c in CATEGORIES if c]) for _ in range(rng.choice((0, 1, 1, 2))))
    return Target(skus, categories) if skus or categories else Target(skus=frozenset({rng.choice(catalog).sku}))


def promotion(rng: random.Random, id: str, catalog: list[Product], currency: str = "EUR",
              start_ms: int = START_MS) -> Promotion:
    """A random valid promotion (checked by from_wire); dated ones start within 20 days of `start_ms`."""
    kind = rng.choice(("percent", "percent", "amount", "fixed_price", "buy_x_get_y", "buy_x_get_y", "bundle"))
    fields: dict[str, object] = {"priority": rng.randrange(0, 4),
                                 "stacking": rng.choice(("combinable", "combinable", "combinable", "best", "exclusive"))}
    if kind == "percent":
        fields["value"] = rng.choice((500, 1000, 1250, 3333, 5000, 10_000))
    elif kind == "amount":
        fields["value"] = rng.choice((1, 10, 50, 100, 250, 1000))
    elif kind == "fixed_price":
        fields["value"] = rng.choice((0, 50, 99, 500, 1500))
    elif kind == "buy_x_get_y":
        fields.update(buy=rng.randrange(1, 4), get=rng.randrange(1, 3), reward_bp=rng.choice((10_000, 5000, 2500)))
    else:
        fields["value"] = rng.choice((0, 100, 999, 2500))
        fields["bundle"] = tuple((_target(rng, catalog, 0.0), rng.randrange(1, 3)) for _ in range(rng.randrange(1, 4)))
    if kind in ("percent", "amount") and rng.random() < 0.3:
        fields["applies_to"] = "order"
    if kind != "bundle":
        fields["target"] = _target(rng, catalog)
    if rng.random() < 0.2:
        fields["min_spend_minor"] = rng.choice((500, 2000, 5000))
    if rng.random() < 0.15:
        fields["min_quantity"] = rng.randrange(2, 6)
    if rng.random() < 0.2:
        fields["max_discount_minor"] = rng.choice((1, 100, 500))
    if rng.random() < 0.2:
        fields["starts_at_ms"] = start_ms + rng.randrange(0, 20) * DAY_MS
        fields["ends_at_ms"] = int(fields["starts_at_ms"]) + rng.randrange(1, 10) * DAY_MS  # type: ignore[call-overload]
    if rng.random() < 0.2:
        fields["days"] = frozenset(rng.sample(range(7), rng.randrange(1, 6)))
    if rng.random() < 0.2:
        start = rng.randrange(0, 1440)
        fields["minutes"] = (start, (start + rng.randrange(30, 900)) % 1440 or 1440)
    if "days" in fields or "minutes" in fields:
        fields["timezone"] = rng.choice(TIMEZONES)
    if rng.random() < 0.2:
        fields["stores"] = frozenset(rng.sample(STORES, rng.randrange(1, 3)))
    if rng.random() < 0.15:
        fields["regions"] = frozenset(rng.sample(REGIONS, 1))
    if rng.random() < 0.1:
        fields.update(code_only=True, public_codes=frozenset({f"CODE-{id}"}) if rng.random() < 0.5 else frozenset())
    if rng.random() < 0.15:
        fields.update(customers_only=True, tiers=frozenset(rng.sample(TIERS, rng.randrange(0, 2))))
    return checked(Promotion(id, f"Promotion {id}", 1, currency, kind, **fields))  # type: ignore[arg-type]


def promotion_set(seed: int, count: int, catalog: list[Product]) -> list[Promotion]:
    rng = random.Random(seed)
    return [promotion(rng, f"promo-{number:04d}", catalog) for number in range(count)]


def cart(rng: random.Random, catalog: list[Product], most: int = 12) -> list[CartLine]:
    """A random cart: 1..most lines, a product sometimes on two lines, quantities mostly small."""
    return [CartLine(f"l{number}", product.sku, product.category, product.unit_minor,
                     rng.choice((1, 1, 1, 2, 3, 5, 12)))
            for number, product in enumerate(rng.choice(catalog) for _ in range(rng.randrange(1, most + 1)))]


def context(rng: random.Random, promotions: list[Promotion], start_ms: int = START_MS,
            store: str | None = None) -> Context:
    """A random moment (in the 30 days from `start_ms`), store (unless given), customer and coupons (some of
    the code-only promotions' ids)."""
    coded = [p.id for p in promotions if p.code_only]
    customer = rng.random() < 0.5
    store = store or rng.choice(STORES)
    return Context(store=store, region=REGION_OF[store], at_ms=start_ms + rng.randrange(0, 30 * DAY_MS),
                   coupons=frozenset(rng.sample(coded, min(len(coded), rng.randrange(0, 3)))),
                   customer="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" if customer else None,
                   tier=rng.choice((None, *TIERS)) if customer else None)
