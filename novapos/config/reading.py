"""Reading TOML and checking its values, shared by the store, hub and device settings."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from novapos import validators
from novapos.tls import Certificates, TlsError, TlsSettings


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


def table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


Settings = Mapping[str, frozenset[str] | None]
"""Every setting a config file reads, by top-level key: the keys of its table, or None for a value."""


def tables(where: str, data: dict[str, Any], settings: Settings) -> dict[str, dict[str, Any]]:
    """Each table `settings` names (empty when absent), once no key at the top level or in a table is
    unknown: a misspelled setting is refused, never silently left at its default."""
    refuse_unknown(where, data, settings)
    found = {key: table(data, key) for key, keys in settings.items() if keys is not None}
    for key, section in found.items():
        refuse_unknown(where, section, settings[key] or (), f"[{key}] ")
    return found


def refuse_unknown(where: str, section: Mapping[str, Any], known: Collection[str], prefix: str = "") -> None:
    if unknown := sorted(set(section) - set(known)):
        raise ConfigError(f"{where}: unknown setting(s) {prefix}{', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")


KIND_WORDS = {str: "text (in quotes)", int: "whole number", bool: "true or false"}


def require(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing required setting '{key}'")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: '{key}' must be {KIND_WORDS[kind]}, got {value!r}")
    return value


def url_setting(section: dict[str, Any], env: str, where: str) -> str:
    """The environment's URL if set, else the config's (which may be empty: check_runnable says so).

    Raises validators.Invalid for a URL that is not printable text."""
    if os.environ.get(env):
        return os.environ[env]
    url = section.get("url", "")
    return "" if url == "" else validators.text(where, url, max_length=2000)


def credentials_setting(section: dict[str, Any], where: str) -> Path | None:
    """The NATS credentials (seed) file: NOVAPOS_NATS_CREDENTIALS if set, else the config's `credentials`
    (none: connect without credentials, for a NATS that has no authorization)."""
    value = os.environ.get("NOVAPOS_NATS_CREDENTIALS") or section.get("credentials", "")
    return Path(validators.text(where, value, max_length=1024)) if value else None


def check_credentials_file(path: Path | None) -> None:
    """ConfigError, before anything starts, for a credentials file that is missing or open to others."""
    from novapos.adapters.nats import CredentialsError, check_credentials  # the adapter imports config
    if path is not None:
        try:
            check_credentials(path)
        except CredentialsError as exc:
            raise ConfigError(str(exc)) from None


def check_tls(settings: TlsSettings) -> None:
    """ConfigError, before anything starts, for [tls] files that are missing, unreadable, open to others or
    that do not match (a key that is not the certificate's)."""
    try:
        Certificates(settings)
    except TlsError as exc:
        raise ConfigError(str(exc)) from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def token_list(where: str, value: Any, what: str, example: str) -> tuple[str, ...]:
    """A non-empty list of unique name tokens (tenants, tills): a string where a list belongs is refused,
    never read as a list of one-letter names."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: {what} must be a list of at least one name such as [{example}], "
                          f"got {validators.describe(value)}")
    names = tuple(validators.token(f"{where}: {what}[{index}]", name) for index, name in enumerate(value))
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: {what} must be unique, got {list(names)}")
    return names
