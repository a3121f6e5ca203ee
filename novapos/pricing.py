"""Which price a SKU sells at, and the tax in it: one rule for the till, the hub and replay validation.

Pure functions on integers, no I/O. Rates are parts per million of the net amount (20 % = 200000).

The rounding rule (the only one in NovaPOS): tax is computed per line, on the line's amount (unit price
times quantity), and rounded to the nearest minor unit, halves away from zero ("round half up" on the
non-negative amounts a sale has). With shelf prices that include tax, the line's tax is its amount
minus the net amount rounded that way; without, it is the net amount times the rate, rounded that way,
and it is added to the sale's total.
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


def pro_rata(amount: int, quantity: int, already: int, returning: int) -> int:
    """What `returning` of a line's `quantity` units are worth when `already` were returned before: the
    cumulative share round_half_up(amount x units, quantity) taken up to already + returning, minus the share
    taken up to `already`. So all the returns of a line sum to its `amount` exactly (the last unit takes what
    rounding left), and returning units one at a time or all at once refunds the same."""
    if not 0 <= already <= already + returning <= quantity or quantity < 1:
        raise ValueError("pro_rata needs 0 <= already <= already + returning <= quantity, quantity >= 1")
    return round_half_up(amount * (already + returning), quantity) - round_half_up(amount * already, quantity)
