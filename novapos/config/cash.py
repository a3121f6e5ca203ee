"""The store's cash control settings ([cash] in the store config): the notes and coins a drawer is counted in,
how far a close count may miss without a manager, and whether a till with a drawer must have an open drawer
session to sell.

Denominations are per currency, in minor units, so a float or a close count by denomination can be checked at
the door (an unknown denomination is refused, never guessed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from novapos import validators
from novapos.config.reading import ConfigError

CASH_SETTINGS = frozenset({"denominations", "tolerance_minor", "require_session"})

DENOMINATIONS: dict[str, tuple[int, ...]] = {
    "EUR": (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000),
    "USD": (1, 5, 10, 25, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
    "GBP": (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
    "CHF": (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 100000),
}
"""Notes and coins in circulation, in minor units, for the currencies a store most often has."""
MAX_COUNT = 100_000
"""The most pieces of one denomination a count may hold (a hostile count must not overflow a total)."""


@dataclass(frozen=True)
class CashConfig:
    denominations: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: dict(DENOMINATIONS))
    tolerance_minor: int = 0
    """How far a close count may be over or short of the expected cash without a manager's approval."""
    require_session: bool = False
    """A till with a cash drawer sells only while a drawer session is open (the float counted)."""

    def for_currency(self, currency: str) -> tuple[int, ...]:
        """The store's denominations; a currency without any configured cannot be counted."""
        return self.denominations.get(currency, ())


def load_cash(section: Mapping[str, Any], where: str) -> CashConfig:
    """[cash]: `denominations = {EUR = [1, 2, 5, ...]}` (optional, the defaults above), `tolerance_minor`,
    `require_session`."""
    try:
        tolerance = validators.integer(f"{where}: [cash] tolerance_minor", section.get("tolerance_minor", 0),
                                       0, validators.MAX_MINOR)
        require = section.get("require_session", False)
        if not isinstance(require, bool):
            raise ConfigError(f"{where}: [cash] require_session must be true or false")
        denominations = dict(DENOMINATIONS)
        given = section.get("denominations", {})
        if not isinstance(given, dict):
            raise ConfigError(f"{where}: [cash] denominations must be a table of currency = [minor units, ...]")
        for currency, values in given.items():
            validators.currency(f"{where}: [cash] denominations", currency)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: [cash] denominations.{currency} must be a list of minor units")
            units = tuple(validators.minor_units(f"{where}: [cash] denominations.{currency}", value, minimum=1)
                          for value in values)
            if len(set(units)) != len(units):
                raise ConfigError(f"{where}: [cash] denominations.{currency} lists a value twice")
            denominations[currency] = tuple(sorted(units))
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
    return CashConfig(denominations, tolerance, require)
