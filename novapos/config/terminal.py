"""How a till works its card payment terminal: the store config's [terminal] table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from novapos import validators
from novapos.config.reading import ConfigError

KEYS = frozenset({"timeout_s", "poll_ms"})


@dataclass(frozen=True)
class TerminalSettings:
    timeout_s: int = 90
    """How long a card payment may wait for the customer's card before the till cancels it at the terminal.
    A payment already processing is never cut short: the issuer decides, and the till waits for that."""
    poll_ms: int = 300
    """How often the till asks the terminal's STATUS while a payment is pending (the protocol says 250-500 ms):
    each answer that changes the stage is shown on the web till at once."""


def load_terminal(section: dict[str, Any], where: str) -> TerminalSettings:
    """The [terminal] table, every value checked; ConfigError names the one to fix."""
    try:
        return TerminalSettings(
            timeout_s=validators.integer(f"{where}: [terminal] timeout_s", section.get("timeout_s", 90), 1, 600),
            poll_ms=validators.integer(f"{where}: [terminal] poll_ms", section.get("poll_ms", 300), 50, 5000))
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
