"""Which price a SKU sells at, and the tax in it: one rule for the till, the hub and replay validation.

Pure functions on integers, no I/O. Rates are parts per million of the net amount (20 % = 200000).

The rounding rule (the only one in NovaPOS): tax is computed per line, on the line's amount (unit price
times quantity), and rounded to the nearest minor unit, halves away from zero ("round half up" on the
non-negative amounts a sale has). With shelf prices that include tax, the line's tax is its amount
minus the net amount rounded that way; without, it is the net amount times the rate, rounded that way,
and it is added to the sale's total.

Discounts (sale.completed v3) come off a line's amount before its tax is computed, so tax is always on what
the customer pays. A percent discount is in basis points (10000 = 100 %) of the gross it applies to, rounded
by the same rule: `percent_of(gross, bp) = round_half_up(gross x bp, 10000)`; an amount discount is minor
units. An order discount is shared over the lines in proportion to their amounts after line discounts, by the
largest-remainder rule (`allocate`): each line first gets the floor of its exact share, then the minor units
left over go one each to the lines with the largest remainders, ties to the earlier line. The shares always
sum to the discount, no share exceeds its line's amount, and the same inputs give the same shares.
Example: 1.00 off lines of 3.00, 3.00 and 3.00 gives exact shares of 33.33... each: floors 33, 33, 33, and the
one minor unit left goes to the first line (all remainders tie): 34, 33, 33.
What is not money capped by its amounts (loyalty points earned over a sale's lines) is shared by `share`: the same
floors and largest remainders, but the total may exceed the amounts' sum (100 points over a 0.50 sale).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

PPM = 1_000_000
Scope = Literal["tenant", "region", "store"]
SCOPES: tuple[Scope, ...] = ("store", "region", "tenant")
"""Most specific first: a store's own price beats its region's, which beats the tenant's."""


@dataclass(frozen=True)
class Price:
    scope: Scope
    scope_id: str
    """"" for the tenant's price, else the region's or store's name."""
    effective_from_ms: int
    minor: int


def effective_price(prices: Iterable[Price], region: str, store: str, at_ms: int) -> Price | None:
    """The price in force at `at_ms` in `store` (of `region`): the latest effective_from <= at_ms of the
    most specific scope that has one; None when no price is in force (the SKU cannot be sold)."""
    best: dict[Scope, Price] = {}
    wanted = {"store": store, "region": region, "tenant": ""}
    for price in prices:
        if price.scope_id != wanted[price.scope] or price.effective_from_ms > at_ms:
            continue
        current = best.get(price.scope)
        if current is None or price.effective_from_ms > current.effective_from_ms:
            best[price.scope] = price
    return next((best[scope] for scope in SCOPES if scope in best), None)


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, halves away from zero (both non-negative)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up takes a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def line_tax(amount: int, rate_ppm: int, included: bool) -> int:
    """The tax of a line of `amount` minor units at `rate_ppm`; see the module's rounding rule."""
    if included:
        return amount - round_half_up(amount * PPM, PPM + rate_ppm)
    return round_half_up(amount * rate_ppm, PPM)


BASIS_POINTS = 10_000
"""100 % in basis points: a percent discount's value is from 1 to BASIS_POINTS."""


def percent_of(gross: int, basis_points: int) -> int:
    """`basis_points` (10000 = 100 %) of `gross` minor units, by the module's rounding rule."""
    if not 0 <= basis_points <= BASIS_POINTS:
        raise ValueError("a percentage is from 0 to 10000 basis points")
    return round_half_up(gross * basis_points, BASIS_POINTS)


def allocate(total: int, amounts: list[int]) -> list[int]:
    """`total` shared over `amounts` in proportion to them, by the largest-remainder rule (ties to the earlier
    amount): the shares sum to `total` and none exceeds its amount. `total` must be from 0 to sum(amounts)."""
    whole = sum(amounts)
    if total < 0 or any(amount < 0 for amount in amounts) or total > whole:
        raise ValueError("allocate takes non-negative amounts and a total from 0 to their sum")
    if total == 0:
        return [0] * len(amounts)
    shares = [total * amount // whole for amount in amounts]
    remainders = [total * amount % whole for amount in amounts]
    left = total - sum(shares)
    for index in sorted(range(len(amounts)), key=lambda i: (-remainders[i], i))[:left]:
        shares[index] += 1
    return shares


def share(total: int, weights: list[int]) -> list[int]:
    """`total` (any non-negative integer, even more than sum(weights)) shared over non-negative `weights` in
    proportion to them, by the largest-remainder rule of `allocate` (floors of the exact shares, then one each to
    the largest remainders, ties to the earlier weight): the shares sum to `total`. With no weight above 0, the
    shares are even (the same rule on equal weights) so nothing is lost; with no weights at all, there are none."""
    if total < 0 or any(weight < 0 for weight in weights):
        raise ValueError("share takes a non-negative total and non-negative weights")
    whole = sum(weights)
    if whole == 0:
        weights, whole = [1] * len(weights), len(weights)
    if whole == 0:
        return []
    shares = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:total - sum(shares)]:
        shares[index] += 1
    return shares


def pro_rata(amount: int, quantity: int, already: int, returning: int) -> int:
    """What `returning` of a line's `quantity` units are worth when `already` were returned before: the
    cumulative share round_half_up(amount x units, quantity) taken up to already + returning, minus the share
    taken up to `already`. So all the returns of a line sum to its `amount` exactly (the last unit takes what
    rounding left), and returning units one at a time or all at once refunds the same."""
    if not 0 <= already <= already + returning <= quantity or quantity < 1:
        raise ValueError("pro_rata needs 0 <= already <= already + returning <= quantity, quantity >= 1")
    return round_half_up(amount * (already + returning), quantity) - round_half_up(amount * already, quantity)
