"""Reading TOML and checking its values, shared by the store, hub and device settings."""

from __future__ import annotations

import os
import re
import stat
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


def nats_url_setting(section: dict[str, Any], where: str) -> str:
    """[nats] url (or NOVAPOS_NATS_URL): one server, or the members of a cluster separated by commas, each
    checked (validators.nats_servers); the client connects to one and moves to another when it is lost."""
    url = url_setting(section, "NOVAPOS_NATS_URL", where)
    return "" if url == "" else ",".join(validators.nats_servers(where, url))


CREDENTIALS_DIRECTORY = "${CREDENTIALS_DIRECTORY}"
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_BARE_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def path_setting(where: str, value: Any) -> Path | None:
    """A file or folder setting (empty: None), with `${CREDENTIALS_DIRECTORY}` replaced by the folder systemd
    loads the unit's LoadCredential= secrets into (its CREDENTIALS_DIRECTORY variable). Every path setting reads
    through here. Any other `${...}`, and `$NAME` without braces, is refused (a misspelled variable never becomes a literal folder name), and
    so is the variable when it is unset: outside systemd, set CREDENTIALS_DIRECTORY to the folder holding the
    credentials (e.g. /etc/novapos/credentials/hub) to run a command with the service's config.

    Raises validators.Invalid for a value that is not printable text, ConfigError for the variables."""
    if value == "":
        return None
    text = validators.text(where, value, max_length=1024)
    for name in _VARIABLE.findall(text):
        if name != "CREDENTIALS_DIRECTORY":
            raise ConfigError(f"{where}: unknown variable ${{{name}}} in {text!r}; the only one is "
                              f"{CREDENTIALS_DIRECTORY} (systemd's LoadCredential= folder)")
    bare = _BARE_VARIABLE.search(text)
    if bare:  # `$CREDENTIALS_DIRECTORY/x` would otherwise be a literal folder named so, not the credential
        raise ConfigError(f"{where}: ${bare.group(1)} in {text!r} is not replaced (no shell reads this file): "
                          f"write {CREDENTIALS_DIRECTORY}, with braces, the only variable")
    if CREDENTIALS_DIRECTORY in text:
        folder = os.environ.get("CREDENTIALS_DIRECTORY", "")
        if not os.path.isabs(folder):
            raise ConfigError(f"{where}: {text!r} uses {CREDENTIALS_DIRECTORY}, which is "
                              f"{'not set' if not folder else f'not an absolute path ({folder!r})'}: run it as "
                              f"the systemd unit (its LoadCredential= lines set it), or set CREDENTIALS_DIRECTORY "
                              f"to the folder holding the credentials")
        text = text.replace(CREDENTIALS_DIRECTORY, folder.rstrip("/") or "/")
    return Path(text)


MAX_URL_FILE_BYTES = 4096


def secret_url_setting(section: dict[str, Any], env: str, where: str) -> str:
    """A URL that carries a secret (the database's, with its password): the environment's if set, else the
    first line of the section's `url_file` (a LoadCredential= file: `${CREDENTIALS_DIRECTORY}/database-url`),
    else its `url`; `url` and `url_file` together are refused (which one would win is a guess).

    Raises validators.Invalid for a URL that is not printable text, ConfigError for an unreadable file."""
    if os.environ.get(env):
        return os.environ[env]
    url_file = path_setting(f"{where} url_file", section.get("url_file", ""))
    if url_file is None:
        return url_setting(section, env, f"{where} url")
    if section.get("url", ""):
        raise ConfigError(f"{where}: set url or url_file, not both")
    try:
        with url_file.open("rb") as file:
            content = file.read(MAX_URL_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where} url_file: cannot read {url_file}: {exc.strerror}") from None
    if len(content) > MAX_URL_FILE_BYTES:
        raise ConfigError(f"{where} url_file: {url_file} is over {MAX_URL_FILE_BYTES} bytes: it must hold one URL")
    lines = content.decode("utf-8", errors="replace").splitlines()
    return validators.text(f"{where} url_file {url_file}", lines[0] if lines else "", max_length=2000)


def credentials_setting(section: dict[str, Any], where: str) -> Path | None:
    """The NATS credentials (seed) file: NOVAPOS_NATS_CREDENTIALS if set, else the config's `credentials`
    (none: connect without credentials, for a NATS that has no authorization)."""
    return path_setting(where, os.environ.get("NOVAPOS_NATS_CREDENTIALS") or section.get("credentials", ""))


def in_credentials_directory(path: Path) -> bool:
    """Whether `path` is a file systemd loaded for this unit (LoadCredential=, under $CREDENTIALS_DIRECTORY).
    systemd >= 254 on a kernel >= 6.4 puts them on a tmpfs as 0400 plus a POSIX ACL granting the service user
    read: stat then shows the ACL's mask as group read (0440), which is no one's group but that user."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if not folder:
        return False
    try:
        return path.resolve().is_relative_to(Path(folder).resolve())
    except OSError:
        return False


def too_open(path: Path, mode: int) -> bool:
    """Whether a secret with `mode` is open to more than its owner: any bit for others, group write or execute,
    and group read except on a LoadCredential= file (in_credentials_directory: that is its ACL)."""
    if mode & (stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP):
        return True
    return bool(mode & stat.S_IRGRP) and not in_credentials_directory(path)


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
