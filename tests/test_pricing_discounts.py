"""The discount rules of novapos.pricing: percent_of (basis points, round half up) and allocate (largest
remainder, ties to the earlier line), with property checks over thousands of seeded random cases."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from novapos.pricing import BASIS_POINTS, allocate, percent_of


def test_a_percent_rounds_half_up_in_minor_units() -> None:
    assert percent_of(999, 1000) == 100  # 99.9 -> 100
    assert percent_of(1005, 1000) == 101  # 100.5 -> 101 (half up)
    assert percent_of(1004, 1000) == 100  # 100.4 -> 100
    assert percent_of(129, 3333) == 43  # 42.9957 -> 43
    assert percent_of(499, BASIS_POINTS) == 499 and percent_of(499, 0) == 0
    with pytest.raises(ValueError):
        percent_of(100, BASIS_POINTS + 1)


def test_the_readme_example_and_ties_go_to_the_earlier_line() -> None:
    assert allocate(100, [300, 300, 300]) == [34, 33, 33]
    assert allocate(2, [100, 100, 100]) == [1, 1, 0]
    assert allocate(100, [810, 129]) == [86, 14]  # remainders 246 and 693: the milk gets the odd cent
    assert allocate(5, [0, 10, 0]) == [0, 5, 0]
    assert allocate(0, [5, 7]) == [0, 0] and allocate(12, [5, 7]) == [5, 7]
    for bad in ((13, [5, 7]), (-1, [5, 7]), (1, [2, -1]), (1, [])):
        with pytest.raises(ValueError):
            allocate(*bad)


def test_shares_always_sum_to_the_discount_fit_their_lines_and_are_the_largest_remainder() -> None:
    """Properties, on 5000 random carts: the shares sum to the discount; none is below 0 or above its line;
    each is within one minor unit of its exact share; the same inputs give the same shares."""
    rng = random.Random(9)
    for _ in range(5000):
        amounts = [rng.choice((0, 1, 7, 99, rng.randrange(1, 10**6), rng.randrange(1, 10**12)))
                   for _ in range(rng.randrange(1, 12))]
        if sum(amounts) == 0:
            continue
        total = rng.randrange(0, sum(amounts) + 1)
        shares = allocate(total, amounts)
        assert sum(shares) == total
        assert all(0 <= share <= amount for share, amount in zip(shares, amounts, strict=True))
        exact = [Fraction(total * amount, sum(amounts)) for amount in amounts]
        assert all(0 <= share - int(e) <= 1 for share, e in zip(shares, exact, strict=True))
        rounded_up = [i for i, (share, e) in enumerate(zip(shares, exact, strict=True)) if share > e]
        left_down = [i for i, (share, e) in enumerate(zip(shares, exact, strict=True)) if share == int(e) < e]
        for up in rounded_up:  # nobody left down had a larger remainder, or an equal one and came earlier
            for down in left_down:
                assert (exact[up] - int(exact[up]), -up) > (exact[down] - int(exact[down]), -down)
        assert allocate(total, list(amounts)) == shares


def test_a_percent_never_exceeds_its_gross_and_is_the_nearest_minor_unit() -> None:
    rng = random.Random(10)
    for _ in range(5000):
        gross, bp = rng.randrange(0, 10**12), rng.randrange(0, BASIS_POINTS + 1)
        off = percent_of(gross, bp)
        assert 0 <= off <= gross
        assert abs(Fraction(gross * bp, BASIS_POINTS) - off) <= Fraction(1, 2)
