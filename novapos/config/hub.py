"""The hub's settings: the tenants it serves, its console's address, NATS, PostgreSQL and ingest batches.

Checked with `novapos.validators` at load, so a hub with a setting it cannot use never starts: the
ConfigError names the file and the setting and says what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from novapos import validators
from novapos.config.reading import (
    ConfigError,
    Settings,
    check_credentials_file,
    credentials_setting,
    read_toml,
    tables,
    token_list,
    url_setting,
)

MAX_INGEST_BATCH = 4096
"""Most events the hub fetches and applies in one PostgreSQL transaction."""

SETTINGS: Settings = {
    "tenants": None, "http": frozenset({"host", "port"}), "nats": frozenset({"url", "credentials", "authorization", "pid_file"}),
    "database": frozenset({"url"}), "ingest": frozenset({"batch"}),
    "stream": frozenset({"max_age_days", "max_bytes", "replicas", "duplicate_window_s"}),
    "dead_letters": frozenset({"retention_days"}), "fleet": frozenset({"offline_after_s"}),
    "console": frozenset({"session_idle_minutes", "session_absolute_minutes", "lock_after", "lock_for_minutes"}),
}
"""Every setting the hub reads, by table: a mistyped one is refused, not silently ignored."""


@dataclass(frozen=True)
class StreamLimits:
    """Limits the hub gives the events stream when it creates it (an existing stream is never changed)."""
    max_age_days: int = 14
    max_bytes: int = 1024**3
    replicas: int = 1
    duplicate_window_s: int = 120


@dataclass(frozen=True)
class ConsoleSettings:
    """Console sign-ins: a session ends after `session_idle_minutes` without a request or
    `session_absolute_minutes` after sign-in; `lock_after` wrong passwords in a row lock a login for
    `lock_for_minutes`."""
    session_idle_minutes: int = 30
    session_absolute_minutes: int = 12 * 60
    lock_after: int = 5
    lock_for_minutes: int = 15

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.session_idle_minutes)

    @property
    def absolute(self) -> timedelta:
        return timedelta(minutes=self.session_absolute_minutes)

    @property
    def lock_for(self) -> timedelta:
        return timedelta(minutes=self.lock_for_minutes)


@dataclass(frozen=True)
class HubConfig:
    tenants: tuple[str, ...] = ("demo",)
    http_host: str = "127.0.0.1"
    http_port: int = 8700
    nats_url: str = ""
    nats_credentials: Path | None = None
    """The hub's own NKEY seed file; its public key heads the generated authorization."""
    nats_authorization: Path | None = None
    """Where `novapos hub store ...` writes the NATS authorization block the server's config includes."""
    nats_pid_file: Path | None = None
    """The nats-server's pid file: the server is told to reload after the authorization changes."""
    database_url: str = ""
    ingest_batch: int = 1024
    dead_letter_retention_days: int = 90
    fleet_offline_after_s: int = 20
    """A store whose health reports stop for this long is marked offline (it reports every few seconds)."""
    stream: StreamLimits = StreamLimits()
    console: ConsoleSettings = ConsoleSettings()

    def check_runnable(self) -> None:
        if not self.nats_url or not self.database_url:
            raise ConfigError("the hub needs NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL (or [nats] url and "
                              "[database] url in its config), or run `novapos demo` for embedded servers")
        check_credentials_file(self.nats_credentials)


def load_hub(path: Path) -> HubConfig:
    data = read_toml(path)
    sections = tables(str(path), data, SETTINGS)
    http, nats, database, ingest = (sections[key] for key in ("http", "nats", "database", "ingest"))

    def whole(table_key: str, key: str, default: int, minimum: int, maximum: int) -> int:
        return validators.integer(f"{path}: [{table_key}] {key}", sections[table_key].get(key, default), minimum, maximum)

    def optional_path(key: str) -> Path | None:
        value = nats.get(key, "")
        return Path(validators.text(f"{path}: [nats] {key}", value, max_length=1024)) if value else None

    try:
        return HubConfig(
            tenants=token_list(str(path), data.get("tenants", ["demo"]), "tenants", '"demo"'),
            http_host=validators.text(f"{path}: [http] host", http.get("host", "127.0.0.1")),
            http_port=validators.integer(f"{path}: [http] port", http.get("port", 8700), 0, 65535),
            nats_url=url_setting(nats, "NOVAPOS_NATS_URL", f"{path}: [nats] url"),
            nats_credentials=credentials_setting(nats, f"{path}: [nats] credentials"),
            nats_authorization=optional_path("authorization"),
            nats_pid_file=optional_path("pid_file"),
            database_url=url_setting(database, "NOVAPOS_DATABASE_URL", f"{path}: [database] url"),
            ingest_batch=validators.integer(f"{path}: [ingest] batch", ingest.get("batch", HubConfig.ingest_batch), 1, MAX_INGEST_BATCH),
            dead_letter_retention_days=whole("dead_letters", "retention_days",
                                             HubConfig.dead_letter_retention_days, 1, 36500),
            fleet_offline_after_s=whole("fleet", "offline_after_s", HubConfig.fleet_offline_after_s, 2, 3600),
            console=ConsoleSettings(
                session_idle_minutes=whole("console", "session_idle_minutes", ConsoleSettings.session_idle_minutes,
                                           1, 24 * 60),
                session_absolute_minutes=whole("console", "session_absolute_minutes",
                                               ConsoleSettings.session_absolute_minutes, 1, 7 * 24 * 60),
                lock_after=whole("console", "lock_after", ConsoleSettings.lock_after, 1, 100),
                lock_for_minutes=whole("console", "lock_for_minutes", ConsoleSettings.lock_for_minutes, 1, 24 * 60),
            ),
            stream=StreamLimits(
                max_age_days=whole("stream", "max_age_days", StreamLimits.max_age_days, 1, 3650),
                max_bytes=whole("stream", "max_bytes", StreamLimits.max_bytes, 1024**2, 2**50),
                replicas=whole("stream", "replicas", StreamLimits.replicas, 1, 5),
                duplicate_window_s=whole("stream", "duplicate_window_s", StreamLimits.duplicate_window_s, 1, 86400),
            ),
        )
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
