"""The store's settings: who it is, its tills, where its state lives, its devices.

Every value is checked at load with novapos.validators, the same checks the API and the wire use: a
tenant or store that could not be a NATS subject token, a name with a NUL, are refused before the
first sale (exit code 2 and a sentence), not at it. Products are not here: they come from the hub's
catalog (actors.catalog), and a `[[products]]` table left in an old config is refused as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from novapos import validators
from novapos.config.backup import KEYS as BACKUP_KEYS
from novapos.config.backup import BackupSettings, load_backup
from novapos.config.cash import CASH_SETTINGS, CashConfig, load_cash
from novapos.config.devices import DevicesConfig, load_devices
from novapos.config.login import LOGIN_SETTINGS, LoginSettings, load_login
from novapos.config.loyalty import KEYS as LOYALTY_KEYS
from novapos.config.loyalty import LoyaltySettings, load_loyalty
from novapos.config.reading import (
    ConfigError,
    Settings,
    check_credentials_file,
    check_tls,
    credentials_setting,
    nats_url_setting,
    path_setting,
    read_toml,
    tables,
    token_list,
)
from novapos.config.receipt import KEYS as RECEIPT_KEYS
from novapos.config.receipt import ReceiptSettings, load_receipt
from novapos.config.returns import SETTINGS as RETURNS_SETTINGS
from novapos.config.returns import ReturnsPolicy, load_returns
from novapos.config.telemetry import KEYS as TELEMETRY_KEYS
from novapos.config.telemetry import TelemetrySettings, load_telemetry
from novapos.config.terminal import KEYS as TERMINAL_KEYS
from novapos.config.terminal import TerminalSettings, load_terminal
from novapos.config.tls import KEYS as TLS_KEYS
from novapos.config.tls import load_tls
from novapos.tls import TlsSettings

LARGEST_BANKNOTE = {"EUR": 50000, "USD": 10000, "GBP": 5000, "CHF": 100000, "CAD": 10000, "AUD": 10000,
                    "SEK": 100000, "NOK": 100000, "DKK": 100000, "PLN": 50000, "CZK": 500000}
"""The largest banknote in circulation, in minor units: the most change a till gives back by default."""
SETTINGS: Settings = {
    "tenant": None, "store": None, "region": None, "currency": None, "tills": None, "max_change_minor": None,
    "staff_refresh_s": None,
    "http": frozenset({"host", "port"}), "nats": frozenset({"url", "credentials"}), "state": frozenset({"dir"}),
    "devices": frozenset(setting.name for setting in fields(DevicesConfig)),  # a rule's own: load_devices
    "health": frozenset({"report_interval_s"}),
    "receipt": RECEIPT_KEYS,
    "login": LOGIN_SETTINGS,
    "cash": CASH_SETTINGS,
    "returns": RETURNS_SETTINGS,
    "terminal": TERMINAL_KEYS,
    "loyalty": LOYALTY_KEYS,
    "backup": BACKUP_KEYS,
    "telemetry": TELEMETRY_KEYS,
    "tls": TLS_KEYS,
}
"""Every setting the store reads, by table: a mistyped one is refused, not silently ignored."""


@dataclass(frozen=True)
class StoreConfig:
    tenant: str
    store: str
    currency: str
    tills: tuple[str, ...]
    region: str = ""
    """The hub's region of this store: which region prices and tax rates apply ("" in none)."""
    http_host: str = "127.0.0.1"
    http_port: int = 8600
    nats_url: str = ""
    nats_credentials: Path | None = None
    """The store's NKEY seed file (`novapos hub store add` writes it); None for a NATS without authorization."""
    state_dir: Path = Path(".state/store")
    devices: DevicesConfig = DevicesConfig()
    forward_batch: int = 256
    health_interval_s: int = 5
    """How often the store reports its health to the hub when nothing changes (a change is reported at once)."""
    max_change_minor: int | None = None
    """Most change a till gives back for a cash sale; None: the currency's largest banknote. Caps
    what a mistyped or hostile tender can make the drawer pay out."""
    staff_refresh_s: float = 60.0
    """How often the store asks the hub for its staff list besides the hub's pushes (a push lost in transit)."""
    receipt: ReceiptSettings | None = None
    """What receipts print about the store ([receipt]); None: the store's id as its name, UTC."""
    login: LoginSettings = LoginSettings()
    """PIN lockout and offline login windows at the tills (novapos.config.login)."""
    cash: CashConfig = CashConfig()
    """Cash control: denominations, the close count's tolerance, whether selling needs an open drawer session."""
    returns: ReturnsPolicy = ReturnsPolicy()
    terminal: TerminalSettings = TerminalSettings()
    loyalty: LoyaltySettings = LoyaltySettings()
    backup: BackupSettings = BackupSettings()
    """Scheduled backups of the store's SQLite file ([backup]; actors.storage.backup)."""
    telemetry: TelemetrySettings = TelemetrySettings()
    """Where traces go ([telemetry], novapos.tracing); off by default."""
    tls: TlsSettings = TlsSettings()
    """[tls] (novapos.tls): HTTPS for the tills, TLS to NATS."""

    def __post_init__(self) -> None:
        if self.max_change_minor is None:
            if self.currency not in LARGEST_BANKNOTE:
                raise ConfigError(f"set max_change_minor, the most change a till may give back in minor units: "
                                  f"the largest banknote of {self.currency} is not known")
            object.__setattr__(self, "max_change_minor", LARGEST_BANKNOTE[self.currency])

    def check_runnable(self) -> None:
        """Refuse, with what to do, a config that `novapos edge` cannot run."""
        if not self.nats_url:
            raise ConfigError("no NATS address: set NOVAPOS_NATS_URL or [nats] url in the store config, "
                              "or run `novapos demo` for embedded servers")
        check_credentials_file(self.nats_credentials)
        check_tls(self.tls)
        for till in self.tills:
            if self.devices.for_till("printer", till) is None:
                raise ConfigError(f"no receipt printer serves till {till!r}: add a [[devices.rules]] printer")


def load_store(path: Path) -> StoreConfig:
    """The store config at `path`, every value checked; ConfigError says which one to fix."""
    data = read_toml(path)
    where = str(path)
    sections = tables(where, data, SETTINGS)
    http, nats, state, devices, health = (sections[key] for key in ("http", "nats", "state", "devices", "health"))
    try:
        tenant = validators.token(f"{where} tenant", data.get("tenant"))
        store = validators.token(f"{where} store", data.get("store"))
        currency = validators.currency(f"{where} currency", data.get("currency"))
        region = validators.token(f"{where} region", data["region"]) if "region" in data else ""
        staff_refresh = validators.integer(f"{where} staff_refresh_s", data.get("staff_refresh_s", 60), 1, 86400)
        max_change = data.get("max_change_minor")
        if max_change is not None:
            validators.minor_units(f"{where} max_change_minor", max_change)
        tills = token_list(where, data.get("tills", ["till-1"]), "tills", '"till-1", "till-2"')
        http_host = validators.text(f"{where}: [http] host", http.get("host", "127.0.0.1"), max_length=255)
        port = validators.integer(f"{where}: [http] port", http.get("port", 8600), 0, 65535)
        nats_url = nats_url_setting(nats, f"{where}: [nats] url")
        nats_credentials = credentials_setting(nats, f"{where}: [nats] credentials")
        health_interval = validators.integer(f"{where}: [health] report_interval_s",
                                             health.get("report_interval_s", 5), 1, 3600)
        state_dir = path_setting(f"{where}: [state] dir", state.get("dir", f".state/{store}"))
        if state_dir is None:
            raise validators.Invalid(f"{where}: [state] dir", "must not be empty")
        tls = load_tls(sections["tls"], where)
    except validators.Invalid as exc:
        raise ConfigError(str(exc)) from None
    return StoreConfig(
        tenant=tenant, store=store, region=region, currency=currency, tills=tills,
        http_host=http_host, http_port=port, nats_url=nats_url, nats_credentials=nats_credentials,
        state_dir=state_dir,
        devices=load_devices(devices, where, tills),
        max_change_minor=max_change, health_interval_s=health_interval, staff_refresh_s=float(staff_refresh),
        receipt=load_receipt(sections["receipt"], where, store),
        login=load_login(sections["login"], where),
        cash=load_cash(sections["cash"], where),
        returns=load_returns(sections["returns"], where),
        terminal=load_terminal(sections["terminal"], where),
        loyalty=load_loyalty(sections["loyalty"], where),
        backup=load_backup(sections["backup"], where),
        telemetry=load_telemetry(sections["telemetry"], where),
        tls=tls,
    )
