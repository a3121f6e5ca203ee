"""A store's returns policy, the [returns] table of its config: how long after a sale it takes items back, in
which condition, what it keeps as a restocking fee, where the money goes back and where the items go.

Read once at load and checked with novapos.validators like every other setting: a fee above 100 % or a
refund target the till does not know stops the edge at start with a sentence, never at a return.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from novapos import validators
from novapos.config.reading import ConfigError

CONDITIONS = ("resaleable", "damaged")
SETTINGS = frozenset({"days", "conditions", "restocking_fee_bp_resaleable", "restocking_fee_bp_damaged",
                      "refund_to", "restock_damaged"})
BP = 10_000


@dataclass(frozen=True)
class ReturnsPolicy:
    days: int = 30
    """A sale older than this many days is refused for return (the customer asks the manager)."""
    conditions: tuple[str, ...] = CONDITIONS
    """The conditions the store takes items back in."""
    restocking_fee_bp: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(CONDITIONS, 0))
    """The share of a returned item's refund the store keeps, by condition, in basis points (10000 = 100 %)."""
    refund_to: Literal["original", "cash"] = "original"
    """Where a refund goes: the original tender (a card sale back to its card) or always cash."""
    restock_damaged: bool = False
    """Whether a damaged item goes back on sale (the floor) or not (the hub's 'damaged' location, or a write-off
    where the store has none); a resaleable item always goes back to the floor."""

    def restocks(self, condition: str) -> bool:
        return condition == "resaleable" or self.restock_damaged


def load_returns(table: Mapping[str, Any], where: str) -> ReturnsPolicy:
    """The [returns] table (empty: the defaults), every value checked; ConfigError says which to fix."""
    try:
        days = validators.integer(f"{where}: [returns] days", table.get("days", 30), 0, 3650)
        raw = table.get("conditions", list(CONDITIONS))
        if not isinstance(raw, list) or not raw or any(value not in CONDITIONS for value in raw):
            raise ConfigError(f"{where}: [returns] conditions must be a non-empty list of {', '.join(CONDITIONS)}")
        fees = {condition: validators.integer(f"{where}: [returns] restocking_fee_bp_{condition}",
                                              table.get(f"restocking_fee_bp_{condition}", 0), 0, BP)
                for condition in CONDITIONS}
        refund_to = table.get("refund_to", "original")
        if refund_to not in ("original", "cash"):
            raise ConfigError(f"{where}: [returns] refund_to must be \"original\" or \"cash\", got {refund_to!r}")
        restock_damaged = table.get("restock_damaged", False)
        if not isinstance(restock_damaged, bool):
            raise ConfigError(f"{where}: [returns] restock_damaged must be true or false")
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
    return ReturnsPolicy(days, tuple(dict.fromkeys(raw)), fees, refund_to, restock_damaged)
