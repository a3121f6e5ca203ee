"""How many points each line of a sale earns under a program (pure: no I/O, so the rule reads in one place).

The base is the program's points per unit spent on what the customer paid with money (the lines' amounts after
every discount, less any points tender: points do not earn points), floored over the whole order, plus the
points per order; both shared over the lines in proportion to their amounts (novapos.pricing.share: points may
exceed the amounts, 100 points per order on a 0.50 sale, and sharing never fails on a well-formed sale). A line
adds its product's or category's bonus per unit. Each line's points are then multiplied by the customer's tier
multiplier (novapos.pricing.round_half_up). What each line earned is kept, so a return reverses it pro rata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hub.loyalty.program import MAX_POINTS, PPM, Program
from novapos.pricing import round_half_up, share


def line_points(program: Program, lines: Sequence[Mapping[str, Any]], points_paid_minor: int, multiplier_ppm: int,
                categories: Mapping[str, str]) -> list[int]:
    """Points earned by each line of a sale (v5 lines: sku, quantity, amount), in line order."""
    amounts = [max(0, int(line["amount"]["minor"])) for line in lines]
    spent = sum(amounts)
    paid = max(0, spent - points_paid_minor)
    base = paid * program.earn_points_per_unit // program.earn_unit_minor
    per_order = program.earn_per_order_points if paid > 0 else 0
    shares = share(base + per_order, amounts) if paid > 0 else [0] * len(lines)
    earned = []
    for line, line_share in zip(lines, shares, strict=True):
        bonus = sum(bonus.points_per_unit for bonus in program.earn_bonuses
                    if bonus.matches(line["sku"], categories.get(line["sku"])))
        raw = line_share + bonus * int(line["quantity"])
        earned.append(min(MAX_POINTS, round_half_up(raw * multiplier_ppm, PPM)))  # an absurd sale: bounded
    return earned
