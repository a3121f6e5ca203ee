"""The promotions engine (novapos.promotions): each kind to the minor unit, conditions, time windows in the
promotion's time zone, scopes, coupons, customers and tiers, priority and stacking, determinism, the
wire and its refusals; then properties over seeded random promotion sets and carts (no line ever gets more
off than it costs, the same answer whatever order the promotions come in, the index misses nothing, the
result is at least as good for the customer as each option it was chosen from)."""

from __future__ import annotations

import calendar
import copy
import json
import random
from datetime import datetime
from typing import Any

import msgpack
import pytest

from novapos.pricing import allocate
from novapos.promotions import (
    MAX_PER_LINE,
    CartLine,
    Context,
    Evaluation,
    Promotion,
    Rules,
    Target,
    checked,
    evaluate,
    explain,
    from_wire,
    in_force,
    to_wire,
)
from novapos.validators import Invalid
from tests import promotion_support as support

CROISSANT = CartLine("l1", "CRO", "food/bakery", 120, 3)
CHEESE = CartLine("l2", "CHS", "food/dairy/cheese", 450, 2)
SOAP = CartLine("l3", "SOAP", "home/clean", 300, 1)
OAT_DRINK = CartLine("l4", "OAT", "food/dairyfree", 200, 1)
CART = [CROISSANT, CHEESE, SOAP, OAT_DRINK]  # 360 + 900 + 300 + 200 = 1760
NOW = calendar.timegm((2026, 7, 4, 6, 30, 0)) * 1000  # Saturday 4 July 2026, 06:30 UTC (08:30 in Paris)
HERE = Context("store-001", "north", NOW)


def promo(id: str = "p", kind: str = "percent", **fields: Any) -> Promotion:
    return checked(Promotion(id, f"Promo {id}", 1, "EUR", kind, **fields))  # type: ignore[arg-type]


def skus(*names: str) -> Target:
    return Target(skus=frozenset(names))


def categories(*names: str) -> Target:
    return Target(categories=frozenset(names))


def amounts(evaluation: Evaluation) -> list[tuple[str, dict[str, int]]]:
    return [(applied.promotion, dict(applied.amounts)) for applied in evaluation.applied]


def one(promotion: Promotion, lines: list[CartLine] = CART, context: Context = HERE) -> dict[str, int]:
    found = evaluate([promotion], lines, context).applied
    assert len(found) <= 1
    return dict(found[0].amounts) if found else {}


# Kinds.

def test_a_category_matches_itself_and_everything_below_it_and_nothing_else() -> None:
    target = categories("food/dairy")
    assert [target.matches(line.sku, line.category) for line in CART] == [False, True, False, False]
    assert categories("food").matches("X", "food") and not categories("food").matches("X", "")
    assert Target().matches("X", "") and skus("X").matches("X", "")
    assert one(promo(value=1000, target=categories("food/dairy"))) == {"l2": 90}


def test_percent_off_items_and_off_the_order_shared_by_the_largest_remainder() -> None:
    assert one(promo(value=1000)) == {"l1": 36, "l2": 90, "l3": 30, "l4": 20}
    # 3.33 % of 17.60 = 0.586 -> 59, shared: floors 12, 30, 10, 6 and the one left to the largest remainder (l4).
    order = one(promo(value=333, applies_to="order"))
    shares = allocate(59, [360, 900, 300, 200])
    assert order == {"l1": 12, "l2": 30, "l3": 10, "l4": 7} == dict(zip(["l1", "l2", "l3", "l4"], shares, strict=True))
    assert one(promo(value=10_000, target=skus("SOAP"))) == {"l3": 300}


def test_amount_off_each_unit_never_past_the_line_and_off_the_order() -> None:
    assert one(promo(kind="amount", value=50, target=categories("food/bakery"))) == {"l1": 150}
    assert one(promo(kind="amount", value=500, target=skus("SOAP", "OAT"))) == {"l3": 300, "l4": 200}
    assert one(promo(kind="amount", value=100, applies_to="order", target=skus("CHS", "SOAP"))) == {"l2": 75, "l3": 25}
    assert sum(one(promo(kind="amount", value=99_999, applies_to="order")).values()) == 1760


def test_a_fixed_unit_price_takes_off_only_what_is_above_it() -> None:
    assert one(promo(kind="fixed_price", value=100, target=skus("CRO"))) == {"l1": 60}
    assert one(promo(kind="fixed_price", value=150, target=skus("CRO", "OAT"))) == {"l4": 50}  # 1.20 is below
    assert one(promo(kind="fixed_price", value=0, target=skus("OAT"))) == {"l4": 200}


def test_buy_x_get_y_rewards_the_cheapest_units() -> None:
    pains = CartLine("l5", "PAIN", "food/bakery", 150, 2)
    three_for_two = promo(kind="buy_x_get_y", buy=2, get=1, reward_bp=10_000, target=categories("food/bakery"))
    # 5 bakery units: one group of 3, its cheapest unit (a croissant at 1.20) free.
    assert one(three_for_two, [pains, CROISSANT]) == {"l1": 120}
    # 6 units: two free, both croissants (the cheapest), whatever the line order.
    assert one(three_for_two, [CROISSANT, CartLine("l5", "PAIN", "food/bakery", 150, 3)]) == {"l1": 240}
    half = promo(kind="buy_x_get_y", buy=1, get=1, reward_bp=5000, target=categories("food"))
    # 6 food units: 3 rewarded at half price, the 3 croissants.
    assert one(half) == {"l1": 180}
    assert one(three_for_two, [CartLine("l1", "CRO", "food/bakery", 120, 2)]) == {}  # no full group
    assert explain(three_for_two) == "Promo p: buy 2 get 1 free" and explain(half) == "Promo p: buy 1 get 1 at 50 % off"


def test_a_bundle_takes_the_most_expensive_units_and_sells_each_set_for_its_price() -> None:
    lunch = promo(kind="bundle", value=500, bundle=((skus("CHS"), 1), (skus("CRO"), 1)))
    # 2 bundles (2 cheeses, 2 croissants): worth 900 + 240, sold for 1000: 140 off, shared 111 / 29.
    assert one(lunch) == {"l2": 111, "l1": 29}
    any_three = promo(kind="bundle", value=500, bundle=((categories("food"), 3),))
    # Food units by price: cheese, cheese, oat drink | 3 croissants: 2 bundles worth 1460 for 1000.
    assert one(any_three) == {"l2": 284, "l4": 63, "l1": 113}
    assert one(promo(kind="bundle", value=5000, bundle=((categories("food"), 3),))) == {}  # dearer than apart
    assert one(promo(kind="bundle", value=1, bundle=((skus("CHS"), 3),))) == {}  # only 2 cheeses
    many = [CartLine("a", "A", "", 100, 9999), CartLine("b", "B", "", 70, 9999)]
    # 19,998 units in 6,666 bundles of 3 without building a bundle at a time: exact.
    big = one(promo(kind="bundle", value=200, bundle=((Target(), 3),)), many)
    assert sum(big.values()) == 9999 * 170 - 6666 * 200


def test_a_cap_shares_itself_over_what_was_taken_and_conditions_gate_the_promotion() -> None:
    assert one(promo(value=5000, max_discount_minor=100)) == {"l1": 21, "l2": 51, "l3": 17, "l4": 11}
    assert one(promo(kind="amount", value=100, applies_to="order", min_spend_minor=1761)) == {}
    assert sum(one(promo(kind="amount", value=100, applies_to="order", min_spend_minor=1760)).values()) == 100
    assert one(promo(value=1000, target=categories("food"), min_quantity=6)) == {"l1": 36, "l2": 90, "l4": 20}
    assert one(promo(value=1000, target=categories("food"), min_quantity=7)) == {}  # 6 food units


# In force.

def at(year: int, month: int, day: int, hour: int, minute: int, **context: Any) -> Context:
    return Context(**{"store": "store-001", "region": "north",
                      "at_ms": calendar.timegm((year, month, day, hour, minute, 0)) * 1000, **context})


def test_days_and_minutes_are_local_to_the_promotions_time_zone() -> None:
    breakfast = promo(value=1000, days=frozenset({5}), minutes=(480, 540), timezone="Europe/Paris")
    assert datetime.fromtimestamp(NOW / 1000).year == 2026
    assert in_force(breakfast, HERE)  # 08:30 on a Saturday in Paris
    assert not in_force(promo(value=1000, days=frozenset({5}), minutes=(480, 540)), HERE)  # 06:30 in UTC
    assert not in_force(promo(value=1000, days=frozenset({5}), minutes=(480, 540), timezone="America/New_York"),
                        HERE)
    assert not in_force(breakfast, at(2026, 7, 4, 7, 0))  # 09:00 in Paris: the window is [08:00, 09:00)
    assert in_force(breakfast, at(2026, 7, 4, 6, 0)) and not in_force(breakfast, at(2026, 7, 4, 5, 59))
    assert not in_force(breakfast, at(2026, 7, 5, 6, 30))  # Sunday
    assert in_force(breakfast, at(2026, 1, 3, 7, 30))  # winter: Paris is UTC+1, a Saturday
    late = promo(value=1000, minutes=(1320, 120))  # 22:00 to 02:00
    assert [in_force(late, at(2026, 7, 4, hour, 0)) for hour in (21, 22, 23, 0, 1, 2)] == [
        False, True, True, True, True, False]


def test_dates_scopes_coupons_customers_and_currency() -> None:
    dated = promo(value=1000, starts_at_ms=NOW, ends_at_ms=NOW + 1000)
    assert [in_force(dated, Context("s", "r", NOW + delta)) for delta in (-1, 0, 999, 1000)] == [
        False, True, True, False]
    scoped = promo(value=1000, stores=frozenset({"store-001"}), regions=frozenset({"north"}))
    assert [in_force(scoped, Context(store, region, NOW)) for store, region in (
        ("store-001", "south"), ("store-002", "north"), ("store-002", "south"))] == [True, True, False]
    coded = promo(value=1000, code_only=True, public_codes=frozenset({"HELLO"}))
    assert not in_force(coded, HERE) and in_force(coded, Context("s", "r", NOW, coupons=frozenset({"p"})))
    members = promo(value=1000, customers_only=True, tiers=frozenset({"gold"}))
    assert [in_force(members, Context("s", "r", NOW, customer=customer, tier=tier)) for customer, tier in (
        (None, None), ("c-1", None), ("c-1", "silver"), ("c-1", "gold"))] == [False, False, False, True]
    assert in_force(promo(value=1000, customers_only=True), Context("s", "r", NOW, customer="c-1"))
    assert in_force(promo(value=1), Context("s", "r", NOW, currency="EUR"))
    assert not in_force(promo(value=1), Context("s", "r", NOW, currency="USD"))


# Stacking.

def test_combinable_promotions_stack_in_priority_order_each_on_what_the_earlier_left() -> None:
    percent = promo("a-percent", value=1000, target=skus("CHS"), priority=2)
    amount = promo("b-amount", kind="amount", value=50, target=skus("CHS"), priority=1)
    assert amounts(evaluate([amount, percent], CART, HERE)) == [("a-percent", {"l2": 90}), ("b-amount", {"l2": 100})]
    first = promo("b-amount", kind="amount", value=50, target=skus("CHS"), priority=3)
    assert amounts(evaluate([percent, first], CART, HERE)) == [("b-amount", {"l2": 100}), ("a-percent", {"l2": 80})]
    same = promo("b-amount", kind="amount", value=50, target=skus("CHS"), priority=2)  # a tie: by id
    assert [a.promotion for a in evaluate([same, percent], CART, HERE).applied] == ["a-percent", "b-amount"]
    result = evaluate([same, percent], CART, HERE)
    assert result.for_line("l2") == [("a-percent", "Promo a-percent", 90), ("b-amount", "Promo b-amount", 100)]
    assert result.for_line("l1") == [] and result.total == 190


def test_of_the_best_promotions_only_the_one_best_for_the_customer_applies_with_the_combinable_ones() -> None:
    base = promo("c-base", value=1000, target=skus("CHS"))
    tenth = promo("b-tenth", value=1000, stacking="best")  # 176, before base ("b-" < "c-"), which takes 10 % of 810
    euro = promo("b-euro", kind="amount", value=100, applies_to="order", stacking="best")  # 100
    assert amounts(evaluate([euro, base, tenth], CART, HERE)) == [
        ("b-tenth", {"l1": 36, "l2": 90, "l3": 30, "l4": 20}), ("c-base", {"l2": 81})]
    big_euro = promo("b-euro", kind="amount", value=500, applies_to="order", stacking="best")
    assert [a.promotion for a in evaluate([big_euro, base, tenth], CART, HERE).applied] == ["b-euro", "c-base"]


def test_an_exclusive_promotion_applies_alone_only_when_it_is_best_for_the_customer_first_option_on_a_tie() -> None:
    base = promo("c-base", value=1000)  # 176
    alone = promo("x-alone", value=1500, stacking="exclusive")  # 264
    assert amounts(evaluate([base, alone], CART, HERE)) == [("x-alone", {"l1": 54, "l2": 135, "l3": 45, "l4": 30})]
    small = promo("x-small", value=500, stacking="exclusive")  # 88
    assert [a.promotion for a in evaluate([base, small], CART, HERE).applied] == ["c-base"]
    tie = promo("x-tie", kind="amount", value=176, applies_to="order", stacking="exclusive")
    assert [a.promotion for a in evaluate([tie, base], CART, HERE).applied] == ["c-base"]
    twin = promo("x-twin", kind="amount", value=176, applies_to="order", stacking="exclusive", priority=1)
    assert [a.promotion for a in evaluate([tie, twin], CART, HERE).applied] == ["x-twin"]  # priority first
    assert evaluate([promo(value=1000, target=skus("NONE"))], CART, HERE) == Evaluation()


def test_a_line_carries_at_most_eight_promotions() -> None:
    many = [promo(f"p{n}", value=100) for n in range(MAX_PER_LINE + 3)]
    result = evaluate(many, CART, HERE)
    assert [len(result.for_line(line.line)) for line in CART] == [MAX_PER_LINE] * len(CART)
    assert [a.promotion for a in result.applied] == [f"p{n}" for n in sorted(range(MAX_PER_LINE + 3), key=str)][:8]


def test_bad_input_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="distinct ids"):
        evaluate([], [CROISSANT, CROISSANT], HERE)
    with pytest.raises(ValueError, match="positive quantity"):
        evaluate([], [CartLine("x", "X", "", 100, 0)], HERE)
    with pytest.raises(ValueError, match="id twice"):
        Rules([promo("p", value=1), promo("p", value=5)])


# The wire.

def test_the_wire_round_trips_through_json_and_msgpack_and_is_canonical() -> None:
    rng = random.Random(11)
    catalog = support.products()
    for number in range(300):
        promotion = support.promotion(rng, f"w{number}", catalog)
        body = to_wire(promotion)
        assert from_wire(json.loads(json.dumps(body))) == promotion
        assert from_wire(msgpack.unpackb(msgpack.packb(body))) == promotion
        assert to_wire(from_wire(body)) == body
    terse = from_wire({"id": "p", "name": "Ten off", "version": 1, "currency": "EUR", "kind": "percent",
                       "value": 1000})  # the rest takes its defaults
    assert terse == Promotion("p", "Ten off", 1, "EUR", "percent", value=1000)


def good_wire() -> dict[str, Any]:
    return to_wire(promo("good", kind="buy_x_get_y", buy=2, get=1, reward_bp=10_000, target=categories("food"),
                         days=frozenset({1}), minutes=(60, 120), timezone="Europe/Paris",
                         code_only=True, public_codes=frozenset({"HELLO"}), customers_only=True,
                         tiers=frozenset({"gold"})))


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"id": "a.b"}, "id may use only letters"), ({"id": None}, "id must be a non-empty name"),
    ({"name": "x" * 121}, "name must be at most 120"), ({"name": "a\u202eb"}, "name must not contain"),
    ({"name": "line\nbreak"}, "name must not contain"), ({"version": -1}, "version must be from 0"),
    ({"version": 1.5}, "version must be a whole number"), ({"currency": "eur"}, "currency must be a three-letter"),
    ({"kind": "free_lunch"}, "kind must be one of"), ({"kind": ["percent"]}, "kind must be one of"),
    ({"applies_to": "order"}, "applies_to may be order only for percent and amount"),
    ({"value": 5}, "value must be from 0 to 0"), ({"buy": 0}, "buy must be from 1"), ({"get": 10_000}, "get must be"),
    ({"reward_bp": 10_001}, "reward_bp must be from 1 to 10000"), ({"reward_bp": True}, "reward_bp must be a whole"),
    ({"target": []}, "target must be an object"), ({"target": {"skus": "CRO"}}, "target.skus must be a list"),
    ({"target": {"skus": ["x"] * 1001}}, "target.skus holds at most 1000"),
    ({"target": {"categories": ["food/"]}}, "target.categories must be a category path"),
    ({"target": {"categories": ["../etc"]}}, "target.categories must be a category path"),
    ({"bundle": [{"target": {}, "quantity": 1}]}, "bundle lists the components of a bundle promotion"),
    ({"min_spend_minor": 10**12 + 1}, "min_spend_minor must be from 0"), ({"min_quantity": -1}, "min_quantity"),
    ({"max_discount_minor": 0}, "max_discount_minor must be from 1"),
    ({"starts_at_ms": 10, "ends_at_ms": 10}, "ends_at_ms must be after starts_at_ms"),
    ({"starts_at_ms": 2**63}, "starts_at_ms must be from 0"), ({"days": [7]}, "days must be from 0 to 6"),
    ({"days": list(range(8))}, "days holds at most 7"), ({"minutes": [60]}, "minutes must be [from, to]"),
    ({"minutes": [60, 60]}, "minutes must be a window of at least one minute"), ({"minutes": [0, 1441]}, "minutes[1]"),
    ({"minutes": "60-120"}, "minutes must be a list"), ({"timezone": "../../etc/passwd"}, "timezone must be an IANA"),
    ({"timezone": "Mars/Olympus"}, "timezone names no known time zone"), ({"timezone": "/etc/localtime"}, "timezone"),
    ({"stores": ["a b"]}, "stores may use only"), ({"regions": [1]}, "regions must be a non-empty name"),
    ({"code_only": "yes"}, "code_only must be true or false"), ({"code_only": False}, "public_codes are for a code_only"),
    ({"public_codes": ["x" * 65]}, "public_codes must be at most 64"), ({"public_codes": ["\x00"]}, "public_codes"),
    ({"customers_only": False}, "tiers are for a customers_only"), ({"tiers": ["gold", ""]}, "tiers must be"),
    ({"priority": 10_001}, "priority must be from 0 to 10000"), ({"stacking": "greedy"}, "stacking must be one of"),
]


@pytest.mark.parametrize(("change", "sentence"), HOSTILE)
def test_from_wire_refuses_a_hostile_promotion_with_a_sentence(change: dict[str, Any], sentence: str) -> None:
    body = {**good_wire(), **copy.deepcopy(change)}
    with pytest.raises(Invalid) as refused:
        from_wire(body)
    assert sentence in str(refused.value)


def test_from_wire_refuses_what_is_not_a_promotion_and_kind_specific_shapes() -> None:
    for body in (None, [], "promotion", 1):
        with pytest.raises(Invalid, match="promotion must be an object"):
            from_wire(body)
    bundle = to_wire(promo("b", kind="bundle", value=100, bundle=((skus("A"), 2),)))
    for change, sentence in (({"bundle": []}, "bundle lists the components"),
                             ({"bundle": [{"target": {}, "quantity": 0}]}, "bundle[0].quantity must be from 1"),
                             ({"bundle": [{"target": {}, "quantity": 1}] * 11}, "bundle holds at most 10"),
                             ({"bundle": ["x"]}, "bundle[0] must be an object"),
                             ({"target": {"skus": ["A"]}}, "target must be empty for a bundle")):
        with pytest.raises(Invalid, match=sentence.replace("[", r"\[").replace("]", r"\]")):
            from_wire({**bundle, **change})
    with pytest.raises(Invalid, match="value must be from 1 to 10000"):
        from_wire({**to_wire(promo(value=1)), "value": 0})
    with pytest.raises(Invalid, match="value must be from 1 to"):
        from_wire({**to_wire(promo(kind="amount", value=1)), "value": 0})


# Properties over random promotion sets and carts.

def test_properties_over_random_promotion_sets_and_carts() -> None:
    catalog = support.products()
    everything = [CartLine(f"all-{p.sku}", p.sku, p.category, p.unit_minor, 1) for p in catalog]
    checked_carts = applied_some = 0
    for seed in range(40):
        promotions = support.promotion_set(seed, 40, catalog)
        rules = Rules(promotions)
        rng = random.Random(1000 + seed)
        shuffled = list(promotions)
        for _ in range(25):
            lines = support.cart(rng, catalog)
            context = support.context(rng, promotions)
            result = evaluate(rules, lines, context)
            rng.shuffle(shuffled)
            # The same answer from a list in any order, indexed per call, as from the prepared rules.
            assert evaluate(shuffled, lines, context) == result
            for line in lines:
                on_line = result.for_line(line.line)
                assert len(on_line) <= MAX_PER_LINE
                assert all(amount > 0 for _, _, amount in on_line)
                assert sum(amount for _, _, amount in on_line) <= line.unit_minor * line.quantity
            for applied in result.applied:
                assert applied.total == sum(applied.amounts.values()) > 0
            ids = [a.promotion for a in result.applied]
            assert len(set(ids)) == len(ids)
            live = [p for p in promotions if in_force(p, context)]
            assert set(ids) <= {p.id for p in live}
            exclusive = [p for p in live if p.stacking == "exclusive"]
            if any(p.id in ids for p in exclusive):
                assert len(ids) == 1  # an exclusive promotion applies alone
            assert sum(1 for p in live if p.stacking == "best" and p.id in ids) <= 1
            # At least as good for the customer as each option it was chosen from.
            for option in exclusive:
                assert result.total >= evaluate([option], lines, context).total
            assert result.total >= evaluate([p for p in live if p.stacking == "combinable"], lines, context).total
            checked_carts += 1
            applied_some += bool(result.applied)
        # The index misses nothing: every promotion matching some line of a cart is a candidate.
        for size in (1, 5, len(everything)):
            lines = rng.sample(everything, size)
            matching = {p.id for p in promotions if any(
                target.matches(line.sku, line.category) for line in lines
                for target in ([t for t, _ in p.bundle] if p.kind == "bundle" else [p.target]))}
            assert {p.id for p in rules.candidates(lines)} >= matching
    assert checked_carts == 1000 and applied_some > 500, applied_some
