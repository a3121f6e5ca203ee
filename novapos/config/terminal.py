"""How a till works its card payment terminal: the store config's [terminal] table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from novapos import validators
from novapos.config.reading import ConfigError

KEYS = frozenset({"timeout_s", "poll_ms", "offline_cards"})


@dataclass(frozen=True)
class TerminalSettings:
    timeout_s: int = 90
    """How long a card payment may wait for the customer's card before the till cancels it at the terminal.
    A payment already processing is never cut short: the issuer decides, and the till waits for that."""
    poll_ms: int = 300
    """How often the till asks the terminal's STATUS while a payment is pending (the protocol says 250-500 ms):
    each answer that changes the stage is shown on the web till at once."""
    offline_cards: bool = False
    """Whether a card may be taken while the hub does not answer: the terminal then stores the card for the hub to
    authorize later (the store carries the risk), under the tenant's offline limits (actors.payments.offline).
    Off: the terminal authorizes every card itself, through its own link to the acquirer, and nothing is stored."""


def load_terminal(section: dict[str, Any], where: str) -> TerminalSettings:
    """The [terminal] table, every value checked; ConfigError names the one to fix."""
    try:
        return TerminalSettings(
            timeout_s=validators.integer(f"{where}: [terminal] timeout_s", section.get("timeout_s", 90), 1, 600),
            poll_ms=validators.integer(f"{where}: [terminal] poll_ms", section.get("poll_ms", 300), 50, 5000),
            offline_cards=_flag(f"{where}: [terminal] offline_cards", section.get("offline_cards", False)))
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None


def _flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise validators.Invalid(where, "must be true or false")
    return value
