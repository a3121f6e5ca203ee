"""The hub's settings: the tenants it serves, its console's address, NATS and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from novapos import validators
from novapos.config.reading import ConfigError, http_port, read_toml, table

T = TypeVar("T")


@dataclass(frozen=True)
class HubConfig:
    tenants: tuple[str, ...] = ("demo",)
    http_host: str = "127.0.0.1"
    http_port: int = 8700
    nats_url: str = ""
    database_url: str = ""
    ingest_batch: int = 256
    dead_letter_retention_days: int = 90

    def check_runnable(self) -> None:
        if not self.nats_url or not self.database_url:
            raise ConfigError("the hub needs NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL (or [nats] url and "
                              "[database] url in its config), or run `novapos demo` for embedded servers")


def load_hub(path: Path) -> HubConfig:
    data = read_toml(path)
    http, nats, database, dead_letters = (table(data, key) for key in ("http", "nats", "database", "dead_letters"))
    return HubConfig(
        tenants=tuple(data.get("tenants", ["demo"])),
        http_host=http.get("host", "127.0.0.1"), http_port=http_port(http, str(path), 8700),
        nats_url=os.environ.get("NOVAPOS_NATS_URL") or nats.get("url", ""),
        database_url=os.environ.get("NOVAPOS_DATABASE_URL") or database.get("url", ""),
        dead_letter_retention_days=_setting(
            validators.integer, f"{path}: [dead_letters] retention_days",
            dead_letters.get("retention_days", HubConfig.dead_letter_retention_days), 1, 36500),
    )


def _setting(check: Callable[..., T], where: str, value: Any, *bounds: Any) -> T:
    """A value checked by one of novapos.validators, refused as a ConfigError with its sentence."""
    try:
        return check(where, value, *bounds)
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
