"""What a printed receipt says about the store: its name, address, tax id, footer, and the time zone its
dates are printed in ([receipt] in the store config).

Every text is checked at load like any other setting (no control or invisible format characters) and is
printed through drivers.device_text all the same: a setting is text, never a printer command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from novapos import validators
from novapos.config.reading import ConfigError

KEYS = frozenset({"name", "address", "tax_id", "footer", "timezone"})
"""The [receipt] table's settings (novapos.config.store.SETTINGS)."""
MAX_LINES = 6
"""The most address or footer lines: a receipt's head and foot stay short."""
LINE_LENGTH = 42
"""Characters of one printed line (80 mm paper, font A): longer settings would be cut on paper."""


@dataclass(frozen=True)
class ReceiptSettings:
    name: str
    """The store's name as printed at the top (default: the store's id)."""
    address: tuple[str, ...] = ()
    tax_id: str = ""
    """The store's tax registration (VAT number...), printed under the address when set."""
    footer: tuple[str, ...] = ()
    timezone: str = "UTC"
    """An IANA zone (Europe/Paris): receipts and reports print the store's wall-clock time, whatever the box's."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _lines(where: str, value: Any) -> tuple[str, ...]:
    """A list of at most MAX_LINES printable lines (a single string is one line)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > MAX_LINES:
        raise validators.Invalid(where, f"must be a list of at most {MAX_LINES} lines of text")
    return tuple(validators.text(where, item, max_length=LINE_LENGTH) for item in items)


def load_receipt(section: dict[str, Any], where: str, store: str) -> ReceiptSettings:
    """The [receipt] table (every key optional); ConfigError names the setting to fix."""
    try:
        name = validators.text(f"{where}: [receipt] name", section.get("name", store), max_length=LINE_LENGTH)
        address = _lines(f"{where}: [receipt] address", section.get("address", []))
        tax_id = section.get("tax_id", "")
        if tax_id != "":
            tax_id = validators.text(f"{where}: [receipt] tax_id", tax_id, max_length=LINE_LENGTH - 8)
        footer = _lines(f"{where}: [receipt] footer", section.get("footer", []))
        timezone = validators.text(f"{where}: [receipt] timezone", section.get("timezone", "UTC"), max_length=64)
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: [receipt] timezone {timezone!r} is not a time zone: use an IANA name "
                          f"such as Europe/Paris or America/New_York") from None
    return ReceiptSettings(name=name, address=address, tax_id=tax_id, footer=footer, timezone=timezone)
