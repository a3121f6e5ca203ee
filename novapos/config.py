"""Store and hub configuration: TOML files in configs/, with environment overrides for deployments.

NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL override the TOML, so one config file serves the demo
(embedded servers) and a real store (a real cluster).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novapos.money import Money


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True)
class Product:
    sku: str
    barcode: str
    name: str
    price: Money


DRIVER_KINDS: dict[str, str] = {
    "escpos-network": "printer", "escpos-serial": "printer", "escpos-usb": "printer",
    "hid-pos": "scanner", "hid-keyboard": "scanner", "serial-scanner": "scanner",
    "serial-drawer": "drawer", "printer-drawer": "drawer",
    "serial-terminal": "terminal",
    "serial-display": "display",
}
"""Every driver a rule may name, and the kind of device it drives."""


@dataclass(frozen=True)
class DeviceRule:
    """How to recognise one device on its bus, which driver runs it, and which till it serves.

    `name` is the device's identity: it stays the same across unplug and replug, whatever port or
    handle the device comes back on.
    """
    name: str
    driver: str
    till: str | None = None          # scanners, drawers, terminals: the till they serve; printers: None = all
    host: str | None = None          # network devices
    port: int | None = None
    path: str | None = None          # serial devices: the port's path (ideally a /dev/serial/by-id link)
    vendor_id: int | None = None     # USB/HID devices
    product_id: int | None = None
    serial_number: str | None = None
    printer: str | None = None       # printer-drawer: the printer it hangs off
    baudrate: int = 9600
    pin: int = 2                     # drawer kick pin (2 or 5)

    @property
    def kind(self) -> str:
        return DRIVER_KINDS[self.driver]

    @property
    def bus(self) -> str:
        """Where the device manager looks for it: network, serial, hid, usb, or none (via its printer)."""
        if self.driver == "printer-drawer":
            return "none"
        if self.driver.startswith("hid-"):
            return "hid"
        if self.driver == "escpos-usb":
            return "usb"
        return "network" if self.driver == "escpos-network" else "serial"


@dataclass(frozen=True)
class DevicesConfig:
    rules: tuple[DeviceRule, ...] = ()
    scan_interval: float = 0.5       # seconds between bus scans
    debounce_scans: int = 3          # missed scans before a device is marked down
    hid_backend: str = "hidapi"      # or "simulated:<unix socket>" for the demo's simulated HID bus

    def for_till(self, kind: str, till: str) -> DeviceRule | None:
        """The device of `kind` serving `till`: one bound to it, else one serving every till."""
        candidates = [rule for rule in self.rules if rule.kind == kind]
        return next((r for r in candidates if r.till == till), None) or \
            next((r for r in candidates if r.till is None), None)


@dataclass(frozen=True)
class StoreConfig:
    tenant: str
    store: str
    currency: str
    tills: tuple[str, ...]
    products: tuple[Product, ...]
    http_host: str = "127.0.0.1"
    http_port: int = 8600
    nats_url: str = ""
    state_dir: Path = Path(".state/store")
    devices: DevicesConfig = DevicesConfig()
    forward_batch: int = 256

    def check_runnable(self) -> None:
        """Refuse, with what to do, a config that `novapos edge` cannot run."""
        if not self.nats_url:
            raise ConfigError("no NATS address: set NOVAPOS_NATS_URL or [nats] url in the store config, "
                              "or run `novapos demo` for embedded servers")
        for till in self.tills:
            if self.devices.for_till("printer", till) is None:
                raise ConfigError(f"no receipt printer serves till {till!r}: add a [[devices.rules]] printer")


@dataclass(frozen=True)
class HubConfig:
    tenants: tuple[str, ...] = ("demo",)
    http_host: str = "127.0.0.1"
    http_port: int = 8700
    nats_url: str = ""
    database_url: str = ""
    ingest_batch: int = 256

    def check_runnable(self) -> None:
        if not self.nats_url or not self.database_url:
            raise ConfigError("the hub needs NOVAPOS_NATS_URL and NOVAPOS_DATABASE_URL (or [nats] url and "
                              "[database] url in its config), or run `novapos demo` for embedded servers")


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


_KIND_WORDS = {str: "text (in quotes)", int: "whole number", bool: "true or false"}


def _require(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing required setting '{key}'")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: '{key}' must be {_KIND_WORDS[kind]}, got {value!r}")
    return value


_DEVICE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RULE_FIELDS = {"name": str, "driver": str, "till": str, "host": str, "port": int, "path": str,
                "vendor_id": int, "product_id": int, "serial_number": str, "printer": str, "baudrate": int, "pin": int}
_RULE_NEEDS = {"network": ("host", "port"), "serial": ("path",), "hid": ("vendor_id", "product_id"),
               "usb": ("vendor_id", "product_id"), "none": ("printer",)}


def _device_rule(raw: dict[str, Any], where: str, tills: tuple[str, ...]) -> DeviceRule:
    unknown = set(raw) - set(_RULE_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    for key, kind in _RULE_FIELDS.items():
        if key in raw and (not isinstance(raw[key], kind) or isinstance(raw[key], bool)):
            raise ConfigError(f"{where}: '{key}' must be {_KIND_WORDS[kind]}, got {raw[key]!r}")
    name, driver = _require(raw, "name", str, where), _require(raw, "driver", str, where)
    if not _DEVICE_NAME.match(name):
        raise ConfigError(f"{where}: device name {name!r} must be 1-64 letters, digits, '-' or '_'")
    if driver not in DRIVER_KINDS:
        raise ConfigError(f"{where}: unknown driver {driver!r} (known: {', '.join(sorted(DRIVER_KINDS))})")
    rule = DeviceRule(**raw)
    missing = [key for key in _RULE_NEEDS[rule.bus] if getattr(rule, key) is None]
    if missing:
        raise ConfigError(f"{where}: driver {driver!r} needs {', '.join(missing)}")
    if rule.till is not None and rule.till not in tills:
        raise ConfigError(f"{where}: till {rule.till!r} is not one of this store's tills {list(tills)}")
    if rule.pin not in (2, 5):
        raise ConfigError(f"{where}: drawer pin must be 2 or 5, got {rule.pin}")
    return rule


def load_devices(data: dict[str, Any], where: str, tills: tuple[str, ...]) -> DevicesConfig:
    rules = tuple(_device_rule(raw, f"{where} devices.rules[{index}]", tills)
                  for index, raw in enumerate(data.get("rules", [])))
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: device names must be unique, got {names}")
    printers = {rule.name for rule in rules if rule.kind == "printer"}
    for rule in rules:
        if rule.printer is not None and rule.printer not in printers:
            raise ConfigError(f"{where}: device {rule.name!r} hangs off printer {rule.printer!r}, which is not configured")
    scan_interval = data.get("scan_interval", 0.5)
    if isinstance(scan_interval, bool) or not isinstance(scan_interval, (int, float)) or not 0.05 <= scan_interval <= 60:
        raise ConfigError(f"{where}: devices.scan_interval must be a number of seconds from 0.05 to 60, got {scan_interval!r}")
    debounce = data.get("debounce_scans", 3)
    if isinstance(debounce, bool) or not isinstance(debounce, int) or not 1 <= debounce <= 100:
        raise ConfigError(f"{where}: devices.debounce_scans must be a whole number from 1 to 100, got {debounce!r}")
    return DevicesConfig(rules=rules, scan_interval=float(scan_interval), debounce_scans=debounce,
                         hid_backend=str(data.get("hid_backend", "hidapi")))


def _products(data: dict[str, Any], where: str, currency: str) -> tuple[Product, ...]:
    products: list[Product] = []
    barcodes: dict[str, str] = {}
    for index, raw in enumerate(data.get("products", [])):
        item = f"{where} products[{index}]"
        sku, barcode, name = (_require(raw, key, str, item).strip() for key in ("sku", "barcode", "name"))
        price = _require(raw, "price", int, item)
        if not (sku and barcode and name):
            raise ConfigError(f"{item}: sku, barcode and name must not be empty")
        if len(sku) > 64 or len(barcode) > 64 or len(name) > 200:
            raise ConfigError(f"{item}: sku and barcode are at most 64 characters, name at most 200")
        if not 0 <= price <= 10**9:
            raise ConfigError(f"{item}: price is in minor units (cents) and must be from 0 to 10^9, got {price}")
        if barcode in barcodes:
            raise ConfigError(f"{item}: barcode {barcode} is already product {barcodes[barcode]}'s")
        barcodes[barcode] = sku
        products.append(Product(sku=sku, barcode=barcode, name=name, price=Money(price, currency)))
    return tuple(products)


def _port(http: dict[str, Any], where: str, default: int) -> int:
    port = http.get("port", default)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"{where}: [http] port must be a whole number from 0 to 65535, got {port!r}")
    return port


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def load_store(path: Path) -> StoreConfig:
    data = _read(path)
    where = str(path)
    currency = _require(data, "currency", str, where)
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ConfigError(f"{where}: currency must be a three-letter ISO code such as EUR, got {currency!r}")
    products = _products(data, where, currency)
    http, nats, state, devices = (_table(data, key) for key in ("http", "nats", "state", "devices"))
    tills = tuple(data.get("tills", ["till-1"]))
    if not tills or not all(isinstance(till, str) and _DEVICE_NAME.match(till) for till in tills):
        raise ConfigError(f"{where}: tills must be a list of 1-64 letters, digits, '-' or '_', got {list(tills)}")
    if len(set(tills)) != len(tills):
        raise ConfigError(f"{where}: till names must be unique, got {list(tills)}")
    return StoreConfig(
        tenant=_require(data, "tenant", str, where), store=_require(data, "store", str, where),
        currency=currency, tills=tills, products=products,
        http_host=http.get("host", "127.0.0.1"), http_port=_port(http, where, 8600),
        nats_url=os.environ.get("NOVAPOS_NATS_URL") or nats.get("url", ""),
        state_dir=Path(state.get("dir", f".state/{data['store']}")),
        devices=load_devices(devices, where, tills),
    )


def load_hub(path: Path) -> HubConfig:
    data = _read(path)
    http, nats, database = (_table(data, key) for key in ("http", "nats", "database"))
    return HubConfig(
        tenants=tuple(data.get("tenants", ["demo"])),
        http_host=http.get("host", "127.0.0.1"), http_port=_port(http, str(path), 8700),
        nats_url=os.environ.get("NOVAPOS_NATS_URL") or nats.get("url", ""),
        database_url=os.environ.get("NOVAPOS_DATABASE_URL") or database.get("url", ""),
    )
