"""The hub's settings: the tenants it serves, its console's address, NATS, PostgreSQL and ingest batches.

Checked with `novapos.validators` at load, so a hub with a setting it cannot use never starts: the
ConfigError names the file and the setting and says what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from novapos import validators
from novapos.config.reading import (
    ConfigError,
    Settings,
    check_credentials_file,
    check_tls,
    credentials_setting,
    nats_url_setting,
    path_setting,
    read_toml,
    secret_url_setting,
    tables,
    token_list,
)
from novapos.config.telemetry import KEYS as TELEMETRY_KEYS
from novapos.config.telemetry import TelemetrySettings, load_telemetry
from novapos.config.tls import KEYS as TLS_KEYS
from novapos.config.tls import load_tls
from novapos.tls import TlsSettings

MAX_INGEST_BATCH = 4096
"""Most events the hub fetches and applies in one PostgreSQL transaction."""

SETTINGS: Settings = {
    "tenants": None, "http": frozenset({"host", "port"}),
    "nats": frozenset({"url", "credentials", "authorization", "pid_file", "monitor_url"}),
    "database": frozenset({"url", "url_file"}), "ingest": frozenset({"batch"}),
    "stream": frozenset({"max_age_days", "max_bytes", "replicas", "duplicate_window_s"}),
    "dead_letters": frozenset({"retention_days"}), "fleet": frozenset({"offline_after_s"}),
    "leases": frozenset({"ttl_s"}),
    "console": frozenset({"session_idle_minutes", "session_absolute_minutes", "lock_after", "lock_for_minutes"}),
    "gift_cards": frozenset({"key_file"}),
    "audit": frozenset({"checkpoint_dir", "key_file", "checkpoint_interval_s", "personal", "personal_retention_days"}),
    "payments": frozenset({"gateway_url", "provider", "timeout_s", "capture_window_s", "watchdog_after_s",
                           "webhook_tolerance_s", "webhook_secrets_file", "reconcile_at"}),
    "telemetry": TELEMETRY_KEYS,
    "tls": TLS_KEYS,
    "leaf": frozenset({"stores", "check_every_s"}),  # stores: an earlier release's, refused with what to run instead
    "retention": frozenset({"inbox_days", "sales_months", "ahead_months"}),
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


INBOX_MARGIN_DAYS = 7
"""The least the inbox's history outlasts the events stream's max age by: an event the stream can still redeliver
(a hub stopped for days, a consumer reset) must still be found in the inbox and skipped."""
LEAF_STREAM_MAX_AGE_DAYS = 30
"""How long a leaf store's local events stream keeps its events (novapos.leaf): the hub's stream may source them
again from the start (a source re-added after a restart), so while a store is flagged as running a leaf node
(hub.partitions) the inbox outlasts this too."""


@dataclass(frozen=True)
class RetentionSettings:
    """[retention] (hub.partitions): months of the inbox older than `inbox_days` are retired (0: the stream's max age
    plus a month), months of sales, lines and tenders older than `sales_months` (0: kept for good); months are made
    `ahead_months` ahead."""
    inbox_days: int = 0
    sales_months: int = 0
    ahead_months: int = 3


@dataclass(frozen=True)
class AuditSettings:
    """The audit log's signed checkpoints (written outside the database) and its personal data (P2-03)."""
    checkpoint_dir: Path = Path("audit-checkpoints")
    """Where signed checkpoints go, one folder per tenant, and the public key that verifies them."""
    key_file: Path | None = None
    """The Ed25519 signing key (made 0600 on first use); None: `checkpoint.key` in checkpoint_dir."""
    checkpoint_interval_s: int = 60
    personal: tuple[str, ...] = ("email", "phone", "customer_name", "client")
    """Details fields whose values are kept beside the chain, never in a hashed record."""
    personal_retention_days: int = 90

    @property
    def signing_key(self) -> Path:
        return self.key_file if self.key_file is not None else self.checkpoint_dir / "checkpoint.key"


@dataclass(frozen=True)
class PaymentSettings:
    """The payment provider the hub talks to (hub.payments.gateway) and the timers of the intents' life."""
    gateway_url: str = ""
    """The provider's API (the acquirer simulator's in the demo); empty: no provider, card tenders are recorded
    as the terminals approved them and nothing is captured, voided or refunded through the hub."""
    provider: str = "simulator"
    """The provider's name: stored on every intent, and the name its webhooks are posted under."""
    timeout_s: int = 10
    """A provider call unanswered after this has an unknown outcome: its status is asked before any retry."""
    capture_window_s: int = 2 * 86400
    """An authorization left uncaptured this long is voided (card-present holds last two to five days)."""
    watchdog_after_s: int = 60
    """An intent processing this long is resolved by asking the provider, or surfaced for a person; more than
    timeout_s + 1 (the longest a call may still be out), checked when the config loads."""
    webhook_tolerance_s: int = 300
    """A webhook whose signed timestamp is further than this from the hub's clock is refused (a replay)."""
    webhook_secrets_file: Path | None = None
    """The provider's webhook signing secrets (one per line, newest first; two during a rotation's overlap)."""
    reconcile_at: str = "02:30"
    """When (UTC, HH:MM) the nightly reconciliation of the day before runs."""


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
    nats_monitor_url: str = ""
    """That nats-server's monitoring (its `http` listener, e.g. http://127.0.0.1:8222): store commands wait until its
    /varz shows the reload; empty: they signal it and return."""
    database_url: str = ""
    ingest_batch: int = 1024
    dead_letter_retention_days: int = 90
    fleet_offline_after_s: int = 20
    """A store whose health reports stop for this long is marked offline (it reports every few seconds)."""
    lease_ttl_s: int = 15
    """[leases] ttl_s: how long a periodic job's lease lasts unrenewed (hub.leases): a hub process killed while
    running a job has it taken over by another within this; renewed every third of it."""
    stream: StreamLimits = StreamLimits()
    console: ConsoleSettings = ConsoleSettings()
    audit: AuditSettings = AuditSettings()
    payments: PaymentSettings = PaymentSettings()
    gift_card_key_file: Path | None = None
    """[gift_cards] key_file: the hex HMAC key gift card numbers are looked up with (hub.giftcards.numbers); None:
    gift card requests and routes answer 503."""
    telemetry: TelemetrySettings = TelemetrySettings()
    """Where traces go ([telemetry], novapos.tracing); off by default."""
    tls: TlsSettings = TlsSettings()
    """[tls] (novapos.tls): HTTPS for the console, TLS to NATS."""
    leaf_check_every_s: int = 15
    """[leaf] check_every_s: how often the hub reads which stores run a leaf node (their flag in its records,
    `novapos hub store leaf`) and checks their sources, adding missing ones and restarting stalled ones."""
    retention: RetentionSettings = RetentionSettings()

    def check_runnable(self) -> None:
        if not self.nats_url or not self.database_url:
            raise ConfigError("the hub needs NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL (or [nats] url and "
                              "[database] url in its config), or run `novapos demo` for embedded servers")
        check_credentials_file(self.nats_credentials)
        check_tls(self.tls)


def load_hub(path: Path) -> HubConfig:
    data = read_toml(path)
    sections = tables(str(path), data, SETTINGS)
    if "stores" in sections["leaf"]:
        raise ConfigError(_leaf_stores_moved(str(path), sections["leaf"]["stores"]))
    http, nats, database, ingest = (sections[key] for key in ("http", "nats", "database", "ingest"))

    def whole(table_key: str, key: str, default: int, minimum: int, maximum: int) -> int:
        return validators.integer(f"{path}: [{table_key}] {key}", sections[table_key].get(key, default), minimum, maximum)

    def audit_path(key: str) -> Path | None:
        return path_setting(f"{path}: [audit] {key}", sections["audit"].get(key, ""))

    def optional_path(key: str) -> Path | None:
        return path_setting(f"{path}: [nats] {key}", nats.get(key, ""))

    try:
        return HubConfig(
            tenants=token_list(str(path), data.get("tenants", ["demo"]), "tenants", '"demo"'),
            http_host=validators.text(f"{path}: [http] host", http.get("host", "127.0.0.1")),
            http_port=validators.integer(f"{path}: [http] port", http.get("port", 8700), 0, 65535),
            nats_url=nats_url_setting(nats, f"{path}: [nats] url"),
            nats_credentials=credentials_setting(nats, f"{path}: [nats] credentials"),
            nats_authorization=optional_path("authorization"),
            nats_pid_file=optional_path("pid_file"),
            nats_monitor_url=_monitor_url(f"{path}: [nats] monitor_url", nats.get("monitor_url", "")),
            database_url=secret_url_setting(database, "NOVAPOS_DATABASE_URL", f"{path}: [database]"),
            ingest_batch=validators.integer(f"{path}: [ingest] batch", ingest.get("batch", HubConfig.ingest_batch), 1, MAX_INGEST_BATCH),
            dead_letter_retention_days=whole("dead_letters", "retention_days",
                                             HubConfig.dead_letter_retention_days, 1, 36500),
            fleet_offline_after_s=whole("fleet", "offline_after_s", HubConfig.fleet_offline_after_s, 2, 3600),
            lease_ttl_s=whole("leases", "ttl_s", HubConfig.lease_ttl_s, 2, 600),
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
            audit=AuditSettings(
                checkpoint_dir=audit_path("checkpoint_dir") or AuditSettings.checkpoint_dir,
                key_file=audit_path("key_file"),
                checkpoint_interval_s=whole("audit", "checkpoint_interval_s", AuditSettings.checkpoint_interval_s,
                                            1, 86400),
                personal=() if sections["audit"].get("personal") == [] else token_list(
                    str(path), sections["audit"].get("personal", list(AuditSettings.personal)), "[audit] personal",
                    '"email", "phone"'),
                personal_retention_days=whole("audit", "personal_retention_days",
                                              AuditSettings.personal_retention_days, 1, 36500),
            ),
            payments=_payments(str(path), sections["payments"], whole),
            gift_card_key_file=path_setting(f"{path}: [gift_cards] key_file", sections["gift_cards"].get("key_file", "")),
            tls=load_tls(sections["tls"], str(path)),
            telemetry=load_telemetry(sections["telemetry"], str(path)),
            leaf_check_every_s=whole("leaf", "check_every_s", HubConfig.leaf_check_every_s, 1, 3600),
            retention=_retention(str(path), whole),
        )
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None


def _leaf_stores_moved(where: str, value: object) -> str:
    """The sentence refusing [leaf] stores (an earlier release's list): what to run instead, store by store."""
    listed = [item.partition("/") for item in value if isinstance(item, str)] if isinstance(value, list) else []
    commands = [f"`novapos hub --config {where} store leaf {tenant} {store} on`" for tenant, _, store in listed
                if validators.TOKEN.fullmatch(tenant) and validators.TOKEN.fullmatch(store)]
    return (f"{where}: [leaf] stores is no longer read: whether a store runs its own NATS leaf node is now a flag in "
            "the hub's records, the same for every hub process at once and audited. Remove `stores` from [leaf], "
            "then flag each store listed there with `novapos hub store leaf TENANT STORE on`"
            + (f" (here: {'; '.join(commands)})" if commands else ""))


def _retention(where: str, whole: Callable[[str, str, int, int, int], int]) -> RetentionSettings:
    """[retention]; its inbox_days checked against [stream] max_age_days here, against the leaf stores' local
    streams where a store is flagged as running a leaf node (hub.tenancy.provisioning.set_store_leaf)."""
    max_age_days = whole("stream", "max_age_days", StreamLimits.max_age_days, 1, 3650)
    least = max_age_days + INBOX_MARGIN_DAYS
    inbox_days = whole("retention", "inbox_days", RetentionSettings.inbox_days, 0, 36500)
    if inbox_days and inbox_days < least:
        raise validators.Invalid(f"{where}: [retention] inbox_days",
                                 f"must be at least [stream] max_age_days ({max_age_days}) + {INBOX_MARGIN_DAYS} = "
                                 f"{least}, or 0 for that plus a month: the inbox must remember every "
                                 "event the stream can still redeliver, or a replay applies it twice")
    return RetentionSettings(inbox_days, whole("retention", "sales_months", RetentionSettings.sales_months, 0, 1200),
                             whole("retention", "ahead_months", RetentionSettings.ahead_months, 1, 24))


def _monitor_url(where: str, url: object) -> str:
    if url == "":
        return ""
    url = validators.text(where, url, max_length=1024)
    if not url.startswith(("http://", "https://")):
        raise validators.Invalid(where, "must be an http:// or https:// address, nats-server's monitoring (its "
                                 "`http` setting), such as http://127.0.0.1:8222")
    return url


def _payments(where: str, table: dict[str, object], whole: Callable[[str, str, int, int, int], int]) -> PaymentSettings:
    url = table.get("gateway_url", "")
    if url and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise validators.Invalid(f"{where}: [payments] gateway_url", "must be an http:// or https:// address")
    at = validators.text(f"{where}: [payments] reconcile_at", table.get("reconcile_at", PaymentSettings.reconcile_at))
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", at):
        raise validators.Invalid(f"{where}: [payments] reconcile_at", "must be a time of day, HH:MM (UTC)")
    timeout_s = whole("payments", "timeout_s", PaymentSettings.timeout_s, 1, 120)
    watchdog_after_s = whole("payments", "watchdog_after_s", PaymentSettings.watchdog_after_s, 1, 86400)
    if watchdog_after_s <= timeout_s + 1:
        raise validators.Invalid(f"{where}: [payments] watchdog_after_s", f"must be more than timeout_s + 1 "
                                 f"({timeout_s + 1}): the watchdog would make a call again while it is still out")
    return PaymentSettings(
        gateway_url=validators.text(f"{where}: [payments] gateway_url", url, max_length=1024) if url else "",
        provider=validators.token(f"{where}: [payments] provider", table.get("provider", PaymentSettings.provider)),
        timeout_s=timeout_s,
        capture_window_s=whole("payments", "capture_window_s", PaymentSettings.capture_window_s, 1, 30 * 86400),
        watchdog_after_s=watchdog_after_s,
        webhook_tolerance_s=whole("payments", "webhook_tolerance_s", PaymentSettings.webhook_tolerance_s, 1, 3600),
        webhook_secrets_file=path_setting(f"{where}: [payments] webhook_secrets_file", table.get("webhook_secrets_file", "")),
        reconcile_at=at)
