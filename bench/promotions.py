"""What evaluating promotions costs a cart: novapos.promotions.evaluate at 1,000 active promotions, beside
evaluating the same carts against an empty rule set (the floor: checking the lines and building an empty
Evaluation), measured in the same run.

    python -m bench.promotions [--promotions 1000] [--carts 2000] [--skus 10000]

Two sets of 1,000 promotions:
- retail: a catalog of `--skus` SKUs in 200 categories (20 departments of 10); most promotions target a few
  SKUs or one category, ten the whole order; every kind, stacking, time window and scope. What a tenant
  runs; the index (novapos.promotions.Rules) gives each cart only the promotions that can match it.
- overlapping: tests/promotion_support.py's sets, 60 SKUs in 9 categories, so that every cart matches
  hundreds of promotions: the worst case of the index, the cost of stacking itself.
Carts of 10 and 50 lines. Also the time to build the Rules of 1,000 promotions (a till does it once per
catalog version).

The last stdout line is one JSON object (bench.figures): per cart, median and p99 (µs) for each set and cart
size, the floor's, and each median's ratio to its floor.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from bench.figures import progress, ratio, summary
from novapos.promotions import CartLine, Context, Promotion, Rules, Target, checked, evaluate
from tests import promotion_support as support

DEPARTMENTS = 20
CATEGORIES_PER_DEPARTMENT = 10


def retail_catalog(skus: int, seed: int = 3) -> list[support.Product]:
    rng = random.Random(seed)
    return [support.Product(f"SKU-{number:06d}", f"dept-{number % DEPARTMENTS:02d}/cat-{number % 200 // DEPARTMENTS:02d}",
                            rng.randrange(50, 5000)) for number in range(skus)]


def retail_promotions(count: int, catalog: list[support.Product], seed: int = 5) -> list[Promotion]:
    """`count` promotions a large tenant might run at once: 64 % on 1 to 5 SKUs, 35 % on a category or a
    department, 1 % (ten) on the whole order; kinds, stackings, windows and scopes mixed."""
    rng = random.Random(seed)
    promotions = []
    for number in range(count):
        draw = rng.random()
        fields: dict[str, object] = {"priority": rng.randrange(0, 10),
                                     "stacking": rng.choices(("combinable", "best", "exclusive"), (80, 15, 5))[0]}
        if draw < 0.01:
            kind = rng.choice(("percent", "amount"))
            fields.update(applies_to="order", min_spend_minor=rng.choice((2000, 5000, 10_000)),
                          value=rng.choice((500, 1000)) if kind == "percent" else rng.choice((200, 500)))
        else:
            if draw < 0.65:
                target = Target(skus=frozenset(rng.choice(catalog).sku for _ in range(rng.randrange(1, 6))))
            else:
                category = rng.choice(catalog).category
                target = Target(categories=frozenset({category if rng.random() < 0.7 else category.split("/")[0]}))
            kind = rng.choice(("percent", "percent", "amount", "fixed_price", "buy_x_get_y", "bundle"))
            if kind == "bundle":
                fields.update(bundle=((target, 2), (Target(skus=frozenset({rng.choice(catalog).sku})), 1)), value=999)
            else:
                fields["target"] = target
                if kind == "buy_x_get_y":
                    fields.update(buy=rng.randrange(1, 4), get=1, reward_bp=rng.choice((10_000, 5000)))
                else:
                    fields["value"] = {"percent": rng.choice((1000, 2000, 3000)), "amount": rng.choice((50, 100)),
                                       "fixed_price": rng.choice((99, 499))}[kind]
        if rng.random() < 0.2:
            fields.update(days=frozenset(rng.sample(range(7), 3)), minutes=(rng.randrange(0, 720), 1440),
                          timezone="Europe/Paris")
        if rng.random() < 0.2:
            fields["stores"] = frozenset(rng.sample(support.STORES, 2))
        promotions.append(checked(Promotion(f"promo-{number:04d}", f"Promotion {number}", 1, "EUR", kind,  # type: ignore[arg-type]
                                            **fields)))  # type: ignore[arg-type]
    return promotions


def carts(catalog: list[support.Product], lines: int, count: int, seed: int) -> list[list[CartLine]]:
    rng = random.Random(seed)
    return [[CartLine(f"l{number}", product.sku, product.category, product.unit_minor, rng.choice((1, 1, 2, 3)))
             for number, product in enumerate(rng.sample(catalog, lines))] for _ in range(count)]


def per_cart(rules: Rules, cart_list: list[list[CartLine]], contexts: list[Context]) -> tuple[list[float], int]:
    """Seconds per evaluate(), and how many carts got some promotion."""
    samples = []
    promoted = 0
    for lines, context in zip(cart_list, contexts, strict=True):
        started = time.perf_counter()
        result = evaluate(rules, lines, context)
        samples.append(time.perf_counter() - started)
        promoted += bool(result.applied)
    return samples, promoted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promotions", type=int, default=1000)
    parser.add_argument("--carts", type=int, default=2000)
    parser.add_argument("--skus", type=int, default=10_000)
    args = parser.parse_args()
    figures: dict[str, float] = {}
    rng = random.Random(9)
    retail = retail_catalog(args.skus)
    small = support.products()
    sets = {"retail": (retail, retail_promotions(args.promotions, retail)),
            "overlapping": (small, support.promotion_set(1, args.promotions, small))}
    started = time.perf_counter()
    built = Rules(sets["retail"][1])
    figures[f"rules_build_{args.promotions}_ms"] = round((time.perf_counter() - started) * 1000, 2)
    for lines in (10, 50):
        for name, (catalog, promotions) in sets.items():
            rules = built if name == "retail" else Rules(promotions)
            cart_list = carts(catalog, min(lines, len(catalog)), args.carts, lines)
            contexts = [support.context(rng, promotions) for _ in cart_list]
            progress(f"{name}: {args.carts} carts of {lines} lines against {len(rules)} promotions, then none")
            per_cart(rules, cart_list[:50], contexts[:50])  # warm up
            samples, promoted = per_cart(rules, cart_list, contexts)
            floor_samples, _ = per_cart(Rules([]), cart_list, contexts)
            measured, floor = summary(samples, 1e6, 1), summary(floor_samples, 1e6, 1)
            key = f"{name}_{args.promotions}_promotions_{lines}_lines"
            figures |= {f"{key}_median_us": measured["median"], f"{key}_p99_us": measured["p99"],
                        f"{key}_floor_median_us": floor["median"], f"{key}_floor_p99_us": floor["p99"],
                        f"{key}_median_ratio": ratio(measured["median"], floor["median"]),
                        f"{key}_promoted_carts_percent": round(100 * promoted / len(cart_list), 1)}
            progress(f"  median {measured['median']} µs, p99 {measured['p99']} µs (floor {floor['median']} µs); "
                     f"{promoted} of {len(cart_list)} carts got a promotion")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
