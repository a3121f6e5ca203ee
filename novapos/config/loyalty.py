"""A store's [loyalty] table: how many recent customers it keeps for offline lookup (actors.loyalty.local)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from novapos import validators
from novapos.config.reading import ConfigError

KEYS = frozenset({"customer_cache_size"})


@dataclass(frozen=True)
class LoyaltySettings:
    customer_cache_size: int = 500
    """The store's recent customers kept for offline lookup (id, card number, name, tier, points): the oldest seen
    is dropped first. 0 keeps none (no offline lookup)."""


def load_loyalty(table: Mapping[str, Any], where: str) -> LoyaltySettings:
    try:
        return LoyaltySettings(validators.integer(f"{where}: [loyalty] customer_cache_size",
                                                  table.get("customer_cache_size", 500), 0, 100_000))
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
