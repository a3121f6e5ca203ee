"""The hub's settings: the tenants it serves, its console's address, NATS and PostgreSQL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novapos import validators
from novapos.config.reading import ConfigError, http_port, read_toml, table


@dataclass(frozen=True)
class StreamLimits:
    """Limits the hub gives the events stream when it creates it (an existing stream is never changed)."""
    max_age_days: int = 14
    max_bytes: int = 1024**3
    replicas: int = 1
    duplicate_window_s: int = 120


@dataclass(frozen=True)
class HubConfig:
    tenants: tuple[str, ...] = ("demo",)
    http_host: str = "127.0.0.1"
    http_port: int = 8700
    nats_url: str = ""
    database_url: str = ""
    ingest_batch: int = 256
    dead_letter_retention_days: int = 90
    stream: StreamLimits = StreamLimits()

    def check_runnable(self) -> None:
        if not self.nats_url or not self.database_url:
            raise ConfigError("the hub needs NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL (or [nats] url and "
                              "[database] url in its config), or run `novapos demo` for embedded servers")


def load_hub(path: Path) -> HubConfig:
    data = read_toml(path)
    http, nats, database, dead_letters, stream = (
        table(data, key) for key in ("http", "nats", "database", "dead_letters", "stream"))
    return HubConfig(
        tenants=tuple(data.get("tenants", ["demo"])),
        http_host=http.get("host", "127.0.0.1"), http_port=http_port(http, str(path), 8700),
        nats_url=os.environ.get("NOVAPOS_NATS_URL") or nats.get("url", ""),
        database_url=os.environ.get("NOVAPOS_DATABASE_URL") or database.get("url", ""),
        dead_letter_retention_days=_whole_number(
            f"{path}: [dead_letters] retention_days",
            dead_letters.get("retention_days", HubConfig.dead_letter_retention_days), 1, 36500),
        stream=StreamLimits(
            max_age_days=_whole_number(f"{path}: [stream] max_age_days",
                                       stream.get("max_age_days", StreamLimits.max_age_days), 1, 3650),
            max_bytes=_whole_number(f"{path}: [stream] max_bytes",
                                    stream.get("max_bytes", StreamLimits.max_bytes), 1024**2, 2**50),
            replicas=_whole_number(f"{path}: [stream] replicas", stream.get("replicas", StreamLimits.replicas), 1, 5),
            duplicate_window_s=_whole_number(f"{path}: [stream] duplicate_window_s",
                                             stream.get("duplicate_window_s", StreamLimits.duplicate_window_s),
                                             1, 86400),
        ),
    )


def _whole_number(where: str, value: Any, minimum: int, maximum: int) -> int:
    """A bounded whole number, refused as a ConfigError with the validator's sentence."""
    try:
        return validators.integer(where, value, minimum, maximum)
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
