"""The promotions engine: which promotions a cart gets and what each takes off each line. The ONE engine the
till, the hub's replay validation and the hub's simulation all call, so a store and the hub agree to the minor
unit. Pure functions on integers (no I/O, no clock, no float), deterministic: the same promotions, lines and
context give the same Evaluation on any machine.

Matching. A `Target` names SKUs and categories; both empty means every item. A category is a path
("food/dairy/cheese"); a target category matches itself and everything below it ("food/dairy" matches
"food/dairy" and "food/dairy/cheese", not "food/dairyfree"). A line matches a target when its SKU is named or
its category is (or is below) a named one. A promotion's matched lines are the lines matching its target (a
bundle's: the lines matching any of its components).

In force (`in_force`): at `context.at_ms` within [starts_at_ms, ends_at_ms) (None: open); on one of `days`
(0 = Monday) and within `minutes` [from, to) after local midnight, both in the promotion's `timezone` (a window
with from > to runs past midnight: 22:00-02:00 is from 1320 to 120, its day is the local day of the moment);
in one of `stores` or in a store of one of `regions` (both empty: the whole tenant); `code_only`: only with a
coupon of it (its id in `context.coupons`); `customers_only`: only with a customer (in one of `tiers`, when
given); in the context's currency (when the context names one). A moment with no local date (outside the years
1 to 9999 in the promotion's zone) is in no `days` or `minutes` window.

Conditions, checked when the promotion's turn comes (see stacking): its matched lines hold at least
`min_quantity` units and at least `min_spend_minor` of what earlier promotions left of them.

Kinds. "Left" is what a line still costs when the promotion's turn comes (unit price x quantity minus what
earlier promotions took off it); no promotion takes more than a line's left, so no line ever gets more off
than its unit price x quantity. A share of a line's left for r of its q units is round_half_up(left x r, q).
- percent, items: each matched line gets pricing.percent_of(left, value) off (value in basis points).
- percent, order: percent_of(the matched lines' left, value) off, shared over them by pricing.allocate.
- amount, items: `value` minor units off each matched unit (a line: min(value x quantity, left)).
- amount, order: `value` off the matched lines' left (at most all of it), shared by pricing.allocate.
- fixed_price (items only): each matched unit sells at `value`: a line gets max(0, left - value x quantity).
- buy_x_get_y (items only): of the matched units, (units // (buy + get)) x get are rewarded, the cheapest
  ones (by unit price, ties to the earlier line): a line with r rewarded units gets percent_of(its share of
  left for r units, reward_bp) off (reward_bp 10000: free). "3 for 2" is buy 2 get 1 at 10000.
- bundle (items only): `bundle` lists components (a target and a quantity); a bundle is one set of them, sold
  together for `value`. Bundles are made one after the other while every component can be filled, each
  component taking the most expensive matched units not yet in a bundle (ties to the earlier line); the
  discount is the bundled units' share of left minus value x bundles (none when that is not positive),
  shared over the bundled lines by pricing.allocate in proportion to their shares.
- max_discount_minor caps a promotion's total: a capped total is shared over what it took off each line by
  pricing.allocate (so the cap never gives a line more than before).
A line carries at most MAX_PER_LINE promotions (sale.completed v5's bound): a promotion whose turn comes
when a line already has that many does not match that line.

Stacking. Order: higher `priority` first, then `id` (text order). The in-force promotions are split by
`stacking`:
- combinable: they stack: applied one after the other in that order, each on what the earlier left.
- best: at most one of them applies, the one best for the customer: for each best promotion B, the chain
  "the combinable ones plus B" (B in its place in the order) is an option, as is the chain of the combinable
  ones alone (a B can leave the customer worse off: it can take a line's last place, or spend a later
  promotion's threshold away).
- exclusive: applies alone (nothing else on the cart) when that is the best choice for the customer.
The options, in this order: the combinable chain, the chains with each B (in the order of their B), each
exclusive promotion alone (in the order); the result is the option with the largest total discount, the
first of them on a tie. A promotion that takes nothing off is not in the result.

Indexing. `Rules` indexes promotions by SKU and category, so a cart looks only at the promotions that can
match one of its lines (plus those targeting every item): evaluating against 1,000 promotions costs about what
the few candidates cost (bench/promotions.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from novapos import validators
from novapos.money import Money
from novapos.pricing import BASIS_POINTS, allocate, percent_of, round_half_up
from novapos.validators import MAX_BIGINT, MAX_LINE_QUANTITY, MAX_MINOR, Invalid

Kind = Literal["percent", "amount", "fixed_price", "buy_x_get_y", "bundle"]
AppliesTo = Literal["items", "order"]
Stacking = Literal["exclusive", "combinable", "best"]
KINDS: tuple[Kind, ...] = get_args(Kind)
STACKINGS: tuple[Stacking, ...] = get_args(Stacking)
ORDER_KINDS = ("percent", "amount")
"""The kinds that may apply to the order (the others are about units of items)."""

MAX_PER_LINE = 8
"""Promotions one line may carry (novapos.wire.schemas.MAX_PROMOTIONS_PER_LINE)."""
MAX_NAME_LENGTH = 120
MAX_TARGET_SKUS = 1000
MAX_TARGET_CATEGORIES = 100
MAX_BUNDLE_COMPONENTS = 10
MAX_SCOPES = 1000
MAX_PUBLIC_CODES = 100
MAX_CODE_LENGTH = 64
MAX_TIERS = 20
MAX_PRIORITY = 10_000
MINUTES_PER_DAY = 24 * 60
_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")


@dataclass(frozen=True)
class Target:
    """What a promotion looks at: these SKUs and these categories (and everything below them); both empty:
    every item."""
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()

    def everything(self) -> bool:
        return not self.skus and not self.categories

    def matches(self, sku: str, category: str) -> bool:
        """Whether an item of `sku` in `category` is one this target looks at."""
        return self.covers(sku, frozenset(_paths(category)))

    def covers(self, sku: str, paths: frozenset[str]) -> bool:
        """matches() with the category's paths already made (_paths): the engine makes them once per line."""
        return (not self.skus and not self.categories) or sku in self.skus or not self.categories.isdisjoint(paths)


@dataclass(frozen=True)
class Promotion:
    id: str
    name: str
    version: int
    currency: str
    kind: Kind
    applies_to: AppliesTo = "items"
    target: Target = Target()
    value: int = 0
    """Basis points (percent), minor units (amount off, fixed unit price, bundle price); 0 for buy_x_get_y."""
    buy: int = 0
    get: int = 0
    reward_bp: int = 0
    """buy_x_get_y: per `buy` + `get` matched units, the `get` cheapest at reward_bp off."""
    bundle: tuple[tuple[Target, int], ...] = ()
    min_spend_minor: int = 0
    min_quantity: int = 0
    max_discount_minor: int | None = None
    starts_at_ms: int | None = None
    ends_at_ms: int | None = None
    days: frozenset[int] = frozenset()
    """0 = Monday .. 6; empty: every day."""
    minutes: tuple[int, int] | None = None
    """Local window [from, to) in minutes after midnight."""
    timezone: str = "UTC"
    """IANA, the tenant's: days and minutes are local there."""
    stores: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    code_only: bool = False
    public_codes: frozenset[str] = frozenset()
    customers_only: bool = False
    tiers: frozenset[str] = frozenset()
    priority: int = 0
    stacking: Stacking = "combinable"


@dataclass(frozen=True)
class CartLine:
    line: str
    sku: str
    category: str
    """"" when the item has none (it then matches only targets of every item or of its SKU)."""
    unit_minor: int
    quantity: int


@dataclass(frozen=True)
class Context:
    store: str
    region: str
    at_ms: int
    coupons: frozenset[str] = frozenset()
    """The ids of the promotions the cart holds a coupon of (a reserved code or a public code)."""
    customer: str | None = None
    tier: str | None = None
    currency: str | None = None
    """The cart's currency: promotions in another are not in force (None: not checked)."""


@dataclass(frozen=True)
class Applied:
    promotion: str
    name: str
    amounts: Mapping[str, int]
    """Line id -> minor units taken off it (only lines it took something off)."""
    total: int
    explanation: str
    """A sentence for the receipt and the till: "Croissants: buy 2 get 1 free"."""


@dataclass(frozen=True)
class Evaluation:
    applied: tuple[Applied, ...] = ()

    @property
    def total(self) -> int:
        return sum(applied.total for applied in self.applied)

    def for_line(self, line: str) -> list[tuple[str, str, int]]:
        """(promotion, name, amount) of each promotion on `line`, in the order they applied: a v5 line's
        promotions[]."""
        return [(applied.promotion, applied.name, applied.amounts[line])
                for applied in self.applied if line in applied.amounts]


def _paths(category: str) -> list[str]:
    """A category and every category above it: "a/b/c" -> ["a", "a/b", "a/b/c"]; "" -> []."""
    if not category:
        return []
    parts = category.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def _order(promotion: Promotion) -> tuple[int, str]:
    return (-promotion.priority, promotion.id)


def _targets(promotion: Promotion) -> list[Target]:
    return [target for target, _ in promotion.bundle] if promotion.kind == "bundle" else [promotion.target]


class Rules:
    """Promotions ready to evaluate: in stacking order, indexed by the SKUs and categories they target. Build
    one per set of promotions (the till per catalog version, the hub per replay) and evaluate many carts."""

    def __init__(self, promotions: Iterable[Promotion]) -> None:
        self.promotions: tuple[Promotion, ...] = tuple(sorted(promotions, key=_order))
        ids = [promotion.id for promotion in self.promotions]
        if len(set(ids)) != len(ids):
            raise ValueError("a set of promotions names a promotion id twice")
        self._everything: list[int] = []
        self._by_sku: dict[str, list[int]] = {}
        self._by_category: dict[str, list[int]] = {}
        for rank, promotion in enumerate(self.promotions):
            targets = _targets(promotion)
            if any(target.everything() for target in targets):
                self._everything.append(rank)
                continue
            for target in targets:
                for sku in target.skus:
                    self._by_sku.setdefault(sku, []).append(rank)
                for category in target.categories:
                    self._by_category.setdefault(category, []).append(rank)

    def __len__(self) -> int:
        return len(self.promotions)

    def candidates(self, lines: Sequence[CartLine]) -> list[Promotion]:
        """The promotions that can match one of `lines`, in stacking order."""
        ranks = set(self._everything)
        by_sku, by_category = self._by_sku, self._by_category
        seen: set[str] = set()
        for line in lines:
            ranks.update(by_sku.get(line.sku, ()))
            if line.category and line.category not in seen:
                seen.add(line.category)
                for path in _paths(line.category):
                    ranks.update(by_category.get(path, ()))
        return [self.promotions[rank] for rank in sorted(ranks)]


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=1024)
def _local(timezone: str, at_ms: int) -> tuple[int, int] | None:
    """(weekday, minutes after midnight) at `at_ms` in `timezone`; None for a moment whose local date lies
    outside the years 1 to 9999 (a till's broken clock: an event's ts may be anywhere in them)."""
    try:
        moment = datetime.fromtimestamp(at_ms // 1000, _zone(timezone))
    except (OverflowError, ValueError, OSError):
        return None
    return moment.weekday(), moment.hour * 60 + moment.minute


def in_force(promotion: Promotion, context: Context) -> bool:
    """Whether `promotion` may apply to a cart in `context` (see the module's "In force")."""
    if promotion.starts_at_ms is not None and context.at_ms < promotion.starts_at_ms:
        return False
    if promotion.ends_at_ms is not None and context.at_ms >= promotion.ends_at_ms:
        return False
    if ((promotion.stores or promotion.regions)
            and context.store not in promotion.stores and context.region not in promotion.regions):
        return False
    if promotion.code_only and promotion.id not in context.coupons:
        return False
    if promotion.customers_only and (
            context.customer is None or (promotion.tiers and context.tier not in promotion.tiers)):
        return False
    if context.currency is not None and promotion.currency != context.currency:
        return False
    if promotion.days or promotion.minutes is not None:
        local = _local(promotion.timezone, context.at_ms)
        if local is None:
            return False  # no local day or time to be in
        day, minute = local
        if promotion.days and day not in promotion.days:
            return False
        if promotion.minutes is not None:
            start, end = promotion.minutes
            if not (start <= minute < end if start < end else minute >= start or minute < end):
                return False
    return True


def _share(left: int, units: int, quantity: int) -> int:
    return left if units == quantity else round_half_up(left * units, quantity)


class _Cart:
    """One evaluation's lines with what does not change along a chain: each line's category paths, the lines by
    SKU and by category path, and the lines each promotion matches (computed once per evaluate(), however many
    options apply the promotion)."""

    def __init__(self, lines: Sequence[CartLine]) -> None:
        self.lines = lines
        self.paths = [frozenset(_paths(line.category)) for line in lines]
        self._everything = list(range(len(lines)))
        self._by_sku: dict[str, list[int]] = {}
        self._by_path: dict[str, list[int]] = {}
        for index, line in enumerate(lines):
            self._by_sku.setdefault(line.sku, []).append(index)
            for path in self.paths[index]:
                self._by_path.setdefault(path, []).append(index)
        self._matched: dict[str, list[int]] = {}

    def matched(self, promotion: Promotion) -> list[int]:
        """The indexes of the lines `promotion` matches (Target.covers), in order: looked up from the cart's
        few SKUs and category paths into the target's sets, not by testing every line."""
        found = self._matched.get(promotion.id)
        if found is None:
            indexes: set[int] = set()
            for target in _targets(promotion):
                if target.everything():
                    indexes.update(self._everything)
                    break
                for sku, at in self._by_sku.items():
                    if sku in target.skus:
                        indexes.update(at)
                if target.categories:
                    for path, at in self._by_path.items():
                        if path in target.categories:
                            indexes.update(at)
            found = self._matched[promotion.id] = sorted(indexes)
        return found


class _State:
    """A chain part-way: what each line has left, how many promotions each carries, what applied."""

    def __init__(self, left: list[int], counts: list[int], steps: list[tuple[Promotion, dict[int, int]]],
                 total: int, crowded: bool) -> None:
        self.left, self.counts, self.steps, self.total = left, counts, steps, total
        self.crowded = crowded
        """Whether a line carries MAX_PER_LINE promotions (until then nothing needs to check)."""

    @classmethod
    def fresh(cls, cart: _Cart) -> _State:
        return cls([line.unit_minor * line.quantity for line in cart.lines], [0] * len(cart.lines), [], 0, False)

    def apply(self, cart: _Cart, promotion: Promotion) -> dict[int, int]:
        """Apply `promotion`; what it took off each line."""
        matched = cart.matched(promotion)
        if self.crowded:
            matched = [index for index in matched if self.counts[index] < MAX_PER_LINE]
        off = _apply(promotion, cart, self.left, matched) if matched else {}
        self.take(promotion, off)
        return off

    def take(self, promotion: Promotion, off: dict[int, int]) -> None:
        """Record what `promotion` takes off (known from another option where its lines were the same)."""
        if off:
            left, counts = self.left, self.counts
            for index, amount in off.items():
                left[index] -= amount
                counts[index] += 1
                self.crowded = self.crowded or counts[index] >= MAX_PER_LINE
            self.steps.append((promotion, off))
            self.total += sum(off.values())


def _apply(promotion: Promotion, cart: _Cart, left: list[int], matched: list[int]) -> dict[int, int]:
    """What `promotion` takes off each of its `matched` lines that may still carry one (index -> minor units,
    nothing when its conditions fail), given what earlier promotions left of each line."""
    lines = cart.lines
    units = sum(lines[index].quantity for index in matched)
    spend = sum(left[index] for index in matched)
    if units < promotion.min_quantity or spend < promotion.min_spend_minor or spend == 0:
        return {}
    kind, value = promotion.kind, promotion.value
    off: dict[int, int]
    if kind in ORDER_KINDS and promotion.applies_to == "order":
        total = percent_of(spend, value) if kind == "percent" else min(value, spend)
        off = dict(zip(matched, allocate(total, [left[index] for index in matched]), strict=True))
    elif kind == "percent":
        off = {index: percent_of(left[index], value) for index in matched}
    elif kind == "amount":
        off = {index: min(value * lines[index].quantity, left[index]) for index in matched}
    elif kind == "fixed_price":
        off = {index: max(0, left[index] - value * lines[index].quantity) for index in matched}
    elif kind == "buy_x_get_y":
        off = _buy_x_get_y(promotion, lines, left, matched, units)
    else:
        off = _bundle(promotion, cart, left, matched)
    cap = promotion.max_discount_minor
    if cap is not None and sum(off.values()) > cap:
        indexes = list(off)
        off = dict(zip(indexes, allocate(cap, [off[index] for index in indexes]), strict=True))
    return {index: amount for index, amount in off.items() if amount > 0}


def _buy_x_get_y(promotion: Promotion, lines: Sequence[CartLine], left: list[int], matched: list[int],
                 units: int) -> dict[int, int]:
    rewarded = units // (promotion.buy + promotion.get) * promotion.get
    off: dict[int, int] = {}
    for index in sorted(matched, key=lambda index: (lines[index].unit_minor, index)):
        if rewarded == 0:
            break
        line = lines[index]
        taken = min(rewarded, line.quantity)
        rewarded -= taken
        off[index] = percent_of(_share(left[index], taken, line.quantity), promotion.reward_bp)
    return off


def _bundle(promotion: Promotion, cart: _Cart, left: list[int], matched: list[int]) -> dict[int, int]:
    """The bundles made greedily (see the module), a repeating pattern of units taken at once: once one bundle
    takes `take[i]` units from lines that all still hold that many, the next bundle takes the same."""
    lines = cart.lines
    order = sorted(matched, key=lambda index: (-lines[index].unit_minor, index))
    available = {index: lines[index].quantity for index in order}
    taken = dict.fromkeys(order, 0)
    bundles = 0
    while True:
        take: dict[int, int] = {}
        for target, quantity in promotion.bundle:
            need = quantity
            for index in order:
                free = available[index] - take.get(index, 0)
                if free > 0 and target.covers(lines[index].sku, cart.paths[index]):
                    step = min(need, free)
                    take[index] = take.get(index, 0) + step
                    need -= step
                    if need == 0:
                        break
            if need:
                break
        else:
            repeats = min(available[index] // units for index, units in take.items())
            for index, units in take.items():
                available[index] -= units * repeats
                taken[index] += units * repeats
            bundles += repeats
            continue
        break
    if bundles == 0:
        return {}
    bundled = [index for index in order if taken[index]]
    worth = [_share(left[index], taken[index], lines[index].quantity) for index in bundled]
    discount = max(0, sum(worth) - promotion.value * bundles)
    return dict(zip(bundled, allocate(discount, worth), strict=True))


def _percent_text(basis_points: int) -> str:
    whole, hundredths = divmod(basis_points, 100)
    return f"{whole}.{hundredths:02d}".rstrip("0").rstrip(".") + " %"


def explain(promotion: Promotion) -> str:
    """The sentence a receipt shows for a promotion: its name and what it gives."""
    kind = promotion.kind
    money = "" if kind in ("percent", "buy_x_get_y") else Money(promotion.value, promotion.currency).format()
    if kind == "percent":
        terms = f"{_percent_text(promotion.value)} off" + (" the order" if promotion.applies_to == "order" else "")
    elif kind == "amount":
        terms = f"{money} off" + (" the order" if promotion.applies_to == "order" else " each")
    elif kind == "fixed_price":
        terms = f"{money} each"
    elif kind == "buy_x_get_y":
        reward = "free" if promotion.reward_bp == BASIS_POINTS else f"at {_percent_text(promotion.reward_bp)} off"
        terms = f"buy {promotion.buy} get {promotion.get} {reward}"
    else:
        size = sum(quantity for _, quantity in promotion.bundle)
        terms = f"{size} for {money}"
    return f"{promotion.name}: {terms}"


def _bound(promotion: Promotion, cart: _Cart) -> int:
    """The most `promotion` alone could take off the cart: all its matched lines (or its cap)."""
    most = sum(cart.lines[index].unit_minor * cart.lines[index].quantity for index in cart.matched(promotion))
    return most if promotion.max_discount_minor is None else min(most, promotion.max_discount_minor)


def evaluate(promotions: Rules | Sequence[Promotion], lines: Sequence[CartLine], context: Context) -> Evaluation:
    """What `promotions` take off `lines` in `context` (see the module's stacking). Lines' ids must be
    distinct, their unit prices non-negative and quantities positive.

    The options share their work: each candidate's matched lines are found once (_Cart); the combinable chain
    is applied once, keeping snapshots of its lines from the first place a best promotion takes; each best
    option starts from its place's snapshot and applies again only the later promotions that match a line the
    option changed (a promotion reads nothing but its matched lines, so on unchanged lines it takes what it took
    in the chain): an option is its total and what differs, and only the chosen one becomes steps, with their
    explanations; an exclusive promotion that could not beat the best option so far even taking everything it
    matches is not evaluated."""
    if len({line.line for line in lines}) != len(lines):
        raise ValueError("cart lines must have distinct ids")
    if any(line.unit_minor < 0 or line.quantity < 1 for line in lines):
        raise ValueError("cart lines need a non-negative unit price and a positive quantity")
    rules = promotions if isinstance(promotions, Rules) else Rules(promotions)
    live = [promotion for promotion in rules.candidates(lines) if in_force(promotion, context)]
    if not live:
        return Evaluation()
    cart = _Cart(lines)
    combinable: list[Promotion] = []
    best: list[tuple[Promotion, int]] = []  # each with the number of combinable ones before it in the order
    for promotion in live:  # in stacking order
        if promotion.stacking == "combinable":
            combinable.append(promotion)
        elif promotion.stacking == "best":
            best.append((promotion, len(combinable)))
    first = min((position for _, position in best), default=len(combinable))
    state = _State.fresh(cart)
    snapshots: list[tuple[list[int], list[int], bool, int]] = []  # the chain before each position from `first`
    chain: list[dict[int, int]] = []  # what each combinable promotion took in the chain
    for position, promotion in enumerate(combinable):
        if position >= first:
            snapshots.append((list(state.left), list(state.counts), state.crowded, state.total))
        chain.append(state.apply(cart, promotion))
    snapshots.append((list(state.left), list(state.counts), state.crowded, state.total))
    chosen: _Option | None = None  # None: the combinable chain itself
    chosen_total = state.total
    for promotion, position in best:
        option = _best_option(cart, promotion, position, combinable, chain, snapshots[position - first:])
        if option is not None and option.total > chosen_total:
            chosen, chosen_total = option, option.total
    steps: list[tuple[Promotion, dict[int, int]]] | None = None
    for promotion in live:
        if promotion.stacking == "exclusive" and _bound(promotion, cart) > chosen_total:
            alone = _State.fresh(cart)
            alone.apply(cart, promotion)
            if alone.total > chosen_total:
                steps, chosen_total = alone.steps, alone.total
    if steps is None:
        steps = state.steps if chosen is None else chosen.steps(combinable, chain)
    return Evaluation(tuple(
        Applied(promotion.id, promotion.name, {lines[index].line: amount for index, amount in sorted(off.items())},
                sum(off.values()), explain(promotion)) for promotion, off in steps))


@dataclass(frozen=True)
class _Option:
    """A best promotion's option, kept as what differs from the chain: its promotion and place, what it took,
    and what each later combinable promotion it changed took instead (the others took what they took in the
    chain). Its steps are made only for the option chosen."""
    promotion: Promotion
    position: int
    off: dict[int, int]
    recomputed: dict[int, dict[int, int]]
    total: int

    def steps(self, combinable: Sequence[Promotion], chain: Sequence[dict[int, int]]) \
            -> list[tuple[Promotion, dict[int, int]]]:
        taken = [(promotion, off) for promotion, off in zip(combinable[:self.position], chain, strict=False)]
        taken.append((self.promotion, self.off))
        taken += [(later, self.recomputed.get(position, chain[position]))
                  for position, later in enumerate(combinable[self.position:], self.position)]
        return [(promotion, off) for promotion, off in taken if off]


def _best_option(cart: _Cart, promotion: Promotion, position: int, combinable: Sequence[Promotion],
                 chain: Sequence[dict[int, int]], snapshots: Sequence[tuple[list[int], list[int], bool, int]]) \
        -> _Option | None:
    """The chain with `promotion` in its place (`position`: the combinable ones before it), from the chain's
    snapshots there and after: a later promotion none of whose lines the option changed takes what it took in
    the chain (it reads nothing else) and costs one check; only the others are applied again, on the chain's
    lines with the option's changed ones laid over them. None when the promotion takes nothing (the chain)."""
    left, counts, crowded, total = snapshots[0]
    matched = cart.matched(promotion)
    if crowded:
        matched = [index for index in matched if counts[index] < MAX_PER_LINE]
    off = _apply(promotion, cart, left, matched) if matched else {}
    if not off:
        return None
    own_left = {index: left[index] - amount for index, amount in off.items()}  # the changed lines, as they are
    own_counts = {index: counts[index] + 1 for index in off}
    total += sum(off.values())
    recomputed: dict[int, dict[int, int]] = {}
    for step, (later, before) in enumerate(zip(combinable[position:], chain[position:], strict=True)):
        later_matched = cart.matched(later)
        if own_left.keys().isdisjoint(later_matched):
            total += sum(before.values())
            continue
        left, counts, crowded, _ = snapshots[step]
        left, counts = list(left), list(counts)
        for index, amount in own_left.items():
            left[index] = amount
        for index, count in own_counts.items():
            counts[index] = count
        if crowded or any(count >= MAX_PER_LINE for count in own_counts.values()):
            later_matched = [index for index in later_matched if counts[index] < MAX_PER_LINE]
        taken = _apply(later, cart, left, later_matched) if later_matched else {}
        for index in taken.keys() | before.keys():
            if index in own_left or taken.get(index) != before.get(index):
                own_left[index] = left[index] - taken.get(index, 0)
                own_counts[index] = counts[index] + (1 if index in taken else 0)
        recomputed[position + step] = taken
        total += sum(taken.values())
    return _Option(promotion, position, off, recomputed, total)


# The wire: what the hub publishes on the catalog stream and stores, and what its console takes.

def _sorted(values: frozenset[str] | frozenset[int]) -> list[Any]:
    return sorted(values)


def _target_wire(target: Target) -> dict[str, Any]:
    return {"skus": _sorted(target.skus), "categories": _sorted(target.categories)}


def to_wire(promotion: Promotion) -> dict[str, Any]:
    """The promotion as a JSON/msgpack map, canonical (sets sorted): from_wire(to_wire(p)) == p."""
    return {
        "id": promotion.id, "name": promotion.name, "version": promotion.version, "currency": promotion.currency,
        "kind": promotion.kind, "applies_to": promotion.applies_to, "target": _target_wire(promotion.target),
        "value": promotion.value, "buy": promotion.buy, "get": promotion.get, "reward_bp": promotion.reward_bp,
        "bundle": [{"target": _target_wire(target), "quantity": quantity} for target, quantity in promotion.bundle],
        "min_spend_minor": promotion.min_spend_minor, "min_quantity": promotion.min_quantity,
        "max_discount_minor": promotion.max_discount_minor, "starts_at_ms": promotion.starts_at_ms,
        "ends_at_ms": promotion.ends_at_ms, "days": _sorted(promotion.days),
        "minutes": None if promotion.minutes is None else list(promotion.minutes), "timezone": promotion.timezone,
        "stores": _sorted(promotion.stores), "regions": _sorted(promotion.regions),
        "code_only": promotion.code_only, "public_codes": _sorted(promotion.public_codes),
        "customers_only": promotion.customers_only, "tiers": _sorted(promotion.tiers),
        "priority": promotion.priority, "stacking": promotion.stacking}


def _list(where: str, value: Any, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(where, f"must be a list, got {validators.describe(value)}")
    if len(value) > most:
        raise Invalid(where, f"holds at most {most} entries, got {len(value)}")
    return value


def _tokens(where: str, value: Any, most: int) -> frozenset[str]:
    return frozenset(validators.token(where, each) for each in _list(where, value, most))


def _optional(where: str, value: Any, minimum: int, maximum: int) -> int | None:
    return None if value is None else validators.integer(where, value, minimum, maximum)


def _choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices or not isinstance(value, str):
        raise Invalid(where, f"must be one of {', '.join(choices)}, got {validators.describe(value)}")
    return value


def _map(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(where, f"must be an object, got {validators.describe(value)}")
    return value


def _target(where: str, value: Any) -> Target:
    body = _map(where, value)
    return Target(skus=_tokens(f"{where}.skus", body.get("skus", []), MAX_TARGET_SKUS),
                  categories=frozenset(validators.category(f"{where}.categories", each) for each
                                       in _list(f"{where}.categories", body.get("categories", []),
                                                MAX_TARGET_CATEGORIES)))


def timezone(where: str, value: Any) -> str:
    """An IANA time zone name this machine knows ("Europe/Paris")."""
    if not isinstance(value, str) or len(value) > 64 or not _TIMEZONE.fullmatch(value) or ".." in value:
        raise Invalid(where, f"must be an IANA time zone such as 'Europe/Paris', got {validators.describe(value)}")
    try:
        _zone(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Invalid(where, f"names no known time zone: {value!r}") from None
    return value


def _value(kind: str, value: Any) -> int:
    if kind == "percent":
        return validators.integer("value", value, 1, BASIS_POINTS)
    if kind == "amount":
        return validators.minor_units("value", value, minimum=1)
    if kind == "buy_x_get_y":
        return validators.integer("value", value, 0, 0)
    return validators.minor_units("value", value)


def from_wire(body: Any) -> Promotion:
    """A promotion from its wire map (the catalog stream, the hub's store, the console), every field checked
    by novapos.validators and the kind's rules; raises Invalid with a sentence for the first one refused.
    Optional fields (all but id, name, version, currency, kind, value) take their defaults when absent;
    unknown keys are ignored (a newer hub may add some)."""
    body = _map("promotion", body)
    get = body.get
    kind = cast(Kind, _choice("kind", get("kind"), KINDS))
    applies_to = cast(AppliesTo, _choice("applies_to", get("applies_to", "items"), get_args(AppliesTo)))
    if applies_to == "order" and kind not in ORDER_KINDS:
        raise Invalid("applies_to", f"may be order only for {' and '.join(ORDER_KINDS)} promotions")
    is_bxgy, is_bundle = kind == "buy_x_get_y", kind == "bundle"
    bundle = tuple((_target(f"bundle[{index}].target", _map(f"bundle[{index}]", each).get("target")),
                    validators.integer(f"bundle[{index}].quantity", each.get("quantity"), 1, MAX_LINE_QUANTITY))
                   for index, each in enumerate(_list("bundle", get("bundle", []), MAX_BUNDLE_COMPONENTS)))
    if is_bundle != bool(bundle):
        raise Invalid("bundle", "lists the components of a bundle promotion (one or more), and only of one")
    target = _target("target", get("target", {}))
    if is_bundle and not target.everything():
        raise Invalid("target", "must be empty for a bundle: its components say what it takes")
    minutes = get("minutes")
    if minutes is not None:
        pair = _list("minutes", minutes, 2)
        if len(pair) != 2:
            raise Invalid("minutes", "must be [from, to] in minutes after local midnight")
        minutes = (validators.integer("minutes[0]", pair[0], 0, MINUTES_PER_DAY - 1),
                   validators.integer("minutes[1]", pair[1], 0, MINUTES_PER_DAY))
        if minutes[0] == minutes[1] % MINUTES_PER_DAY:
            raise Invalid("minutes", "must be a window of at least one minute")
    starts = _optional("starts_at_ms", get("starts_at_ms"), 0, MAX_BIGINT)
    ends = _optional("ends_at_ms", get("ends_at_ms"), 0, MAX_BIGINT)
    if starts is not None and ends is not None and ends <= starts:
        raise Invalid("ends_at_ms", "must be after starts_at_ms")
    code_only = validators.boolean("code_only", get("code_only", False))
    public_codes = frozenset(validators.text("public_codes", code, max_length=MAX_CODE_LENGTH)
                             for code in _list("public_codes", get("public_codes", []), MAX_PUBLIC_CODES))
    if public_codes and not code_only:
        raise Invalid("public_codes", "are for a code_only promotion")
    customers_only = validators.boolean("customers_only", get("customers_only", False))
    tiers = _tokens("tiers", get("tiers", []), MAX_TIERS)
    if tiers and not customers_only:
        raise Invalid("tiers", "are for a customers_only promotion")
    return Promotion(
        id=validators.token("id", get("id")),
        name=validators.text("name", get("name"), max_length=MAX_NAME_LENGTH),
        version=validators.integer("version", get("version"), 0, MAX_BIGINT),
        currency=validators.currency("currency", get("currency")), kind=kind, applies_to=applies_to,
        target=target, value=_value(kind, get("value")),
        buy=validators.integer("buy", get("buy", 0), 1 if is_bxgy else 0, MAX_LINE_QUANTITY if is_bxgy else 0),
        get=validators.integer("get", get("get", 0), 1 if is_bxgy else 0, MAX_LINE_QUANTITY if is_bxgy else 0),
        reward_bp=validators.integer("reward_bp", get("reward_bp", 0), 1 if is_bxgy else 0,
                                     BASIS_POINTS if is_bxgy else 0),
        bundle=bundle,
        min_spend_minor=validators.minor_units("min_spend_minor", get("min_spend_minor", 0)),
        min_quantity=validators.integer("min_quantity", get("min_quantity", 0), 0, MAX_LINE_QUANTITY),
        max_discount_minor=_optional("max_discount_minor", get("max_discount_minor"), 1, MAX_MINOR),
        starts_at_ms=starts, ends_at_ms=ends,
        days=frozenset(validators.integer("days", day, 0, 6) for day in _list("days", get("days", []), 7)),
        minutes=minutes, timezone=timezone("timezone", get("timezone", "UTC")),
        stores=_tokens("stores", get("stores", []), MAX_SCOPES),
        regions=_tokens("regions", get("regions", []), MAX_SCOPES),
        code_only=code_only, public_codes=public_codes, customers_only=customers_only, tiers=tiers,
        priority=validators.integer("priority", get("priority", 0), 0, MAX_PRIORITY),
        stacking=cast(Stacking, _choice("stacking", get("stacking", "combinable"), STACKINGS)))


def checked(promotion: Promotion) -> Promotion:
    """`promotion` if from_wire accepts it as it is (a promotion built in code, such as the demo's), else
    Invalid: the engine assumes the rules from_wire enforces."""
    return from_wire(to_wire(promotion))

