"""[tls] in store.toml and hub.toml: what novapos.tls loads (see there for what each setting does)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from novapos import validators
from novapos.config.reading import path_setting
from novapos.tls import TlsSettings

KEYS = frozenset({"cert_file", "key_file", "ca_file", "client_auth", "check_every_s"})


def load_tls(section: Mapping[str, Any], where: str) -> TlsSettings:
    """[tls] from a config file's table; validators.Invalid names the setting that cannot be used."""
    def path(key: str) -> Path | None:
        return path_setting(f"{where}: [tls] {key}", section.get(key, ""))

    client_auth = section.get("client_auth", False)
    if not isinstance(client_auth, bool):
        raise validators.Invalid(f"{where}: [tls] client_auth", "must be true or false")
    settings = TlsSettings(cert_file=path("cert_file"), key_file=path("key_file"), ca_file=path("ca_file"),
                           client_auth=client_auth,
                           check_every_s=float(validators.integer(f"{where}: [tls] check_every_s",
                                                                  section.get("check_every_s", 30), 1, 86400)))
    if (settings.cert_file is None) != (settings.key_file is None):
        raise validators.Invalid(f"{where}: [tls] cert_file and key_file", "set both (the certificate and its key) or neither")
    if client_auth and (settings.ca_file is None or settings.cert_file is None):
        raise validators.Invalid(f"{where}: [tls] client_auth",
                                 "needs cert_file and key_file (HTTPS) and ca_file (the CA client certificates come from)")
    return settings
