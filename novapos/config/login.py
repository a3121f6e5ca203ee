"""The store's [login] settings: how the tills lock out wrong PINs and how long they log in without the hub.

A till checks PINs against the staff list the hub last sent (actors.staff). `offline_after_s` is how old the
hub's last confirmation of that list may be before a login counts as offline (shown on the till, audited as
till.offline_login); `offline_grace_s` is how old it may be before logins are refused until the hub answers
again (a person the hub deactivated meanwhile could still log in from an old list: the window bounds that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from novapos import validators
from novapos.config.reading import ConfigError

LOGIN_SETTINGS = frozenset({"lockout_after", "lockout_s", "offline_after_s", "offline_grace_s"})


@dataclass(frozen=True)
class LoginSettings:
    lockout_after: int = 5
    """Wrong PINs in a row (at any till of the store) after which the user is locked out."""
    lockout_s: int = 900
    """How long a locked-out user stays locked out."""
    offline_after_s: int = 180
    """Age of the hub's last confirmation of the staff list past which a login is offline (above staff_refresh_s)."""
    offline_grace_s: int = 86400
    """Age past which nobody can log in until the hub confirms the staff list again."""


def load_login(section: dict[str, Any], where: str) -> LoginSettings:
    """The [login] table (already checked for unknown keys), every value bounded; ConfigError says which."""
    try:
        settings = LoginSettings(
            lockout_after=validators.integer(f"{where}: [login] lockout_after", section.get("lockout_after", 5), 1, 100),
            lockout_s=validators.integer(f"{where}: [login] lockout_s", section.get("lockout_s", 900), 1, 86400),
            offline_after_s=validators.integer(f"{where}: [login] offline_after_s",
                                               section.get("offline_after_s", 180), 1, 86400),
            offline_grace_s=validators.integer(f"{where}: [login] offline_grace_s",
                                               section.get("offline_grace_s", 86400), 1, 30 * 86400))
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
    if settings.offline_grace_s < settings.offline_after_s:
        raise ConfigError(f"{where}: [login] offline_grace_s ({settings.offline_grace_s}) must be at least "
                          f"offline_after_s ({settings.offline_after_s})")
    return settings
