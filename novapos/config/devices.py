"""Device rules: how the device manager recognises each device, which driver runs it, which till it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.hid_socket import SETTING_PREFIX as HID_SOCKET
from drivers.registry import DriverSpec, driver_names, driver_spec
from novapos.config.reading import KIND_WORDS, ConfigError, require
from novapos.validators import Invalid, text, token


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
    def spec(self) -> DriverSpec:
        """Its driver's spec (drivers.registry): kind, bus, needed settings, how to open it."""
        return driver_spec(self.driver)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def bus(self) -> str:
        """Where the device manager looks for it: network, serial, hid, usb, or none (via its printer)."""
        return self.spec.bus


@dataclass(frozen=True)
class DevicesConfig:
    rules: tuple[DeviceRule, ...] = ()
    scan_interval: float = 0.5       # seconds between bus scans
    debounce_scans: int = 3          # missed scans before a device is marked down
    hid_backend: str = "hidapi"      # or "socket:<unix socket path>": a HID bus served there (the demo's)

    def for_till(self, kind: str, till: str) -> DeviceRule | None:
        """The device of `kind` serving `till`: one bound to it, else one serving every till."""
        candidates = [rule for rule in self.rules if rule.kind == kind]
        return next((r for r in candidates if r.till == till), None) or \
            next((r for r in candidates if r.till is None), None)


_RULE_FIELDS = {"name": str, "driver": str, "till": str, "host": str, "port": int, "path": str,
                "vendor_id": int, "product_id": int, "serial_number": str, "printer": str, "baudrate": int, "pin": int}


def _device_rule(raw: dict[str, Any], where: str, tills: tuple[str, ...]) -> DeviceRule:
    unknown = set(raw) - set(_RULE_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    for key, kind in _RULE_FIELDS.items():
        if key in raw and (not isinstance(raw[key], kind) or isinstance(raw[key], bool)):
            raise ConfigError(f"{where}: '{key}' must be {KIND_WORDS[kind]}, got {raw[key]!r}")
    name, driver = require(raw, "name", str, where), require(raw, "driver", str, where)
    try:
        token(f"{where}: device name", name)
    except Invalid as exc:
        raise ConfigError(str(exc)) from None
    if driver not in driver_names():
        raise ConfigError(f"{where}: unknown driver {driver!r} (known: {', '.join(driver_names())})")
    rule = DeviceRule(**raw)
    missing = [key for key in rule.spec.needs if getattr(rule, key) is None]
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
                         hid_backend=_hid_backend(data.get("hid_backend", "hidapi"), where))


def _hid_backend(setting: Any, where: str) -> str:
    """'hidapi' (USB HID devices on this box), or 'socket:<path>' (a HID bus served on that unix socket)."""
    try:
        setting = text(f"{where}: devices.hid_backend", setting)
    except Invalid as exc:
        raise ConfigError(str(exc)) from None
    if setting != "hidapi" and not (setting.startswith(HID_SOCKET) and setting.removeprefix(HID_SOCKET).strip()):
        raise ConfigError(f"{where}: devices.hid_backend must be 'hidapi' or '{HID_SOCKET}<unix socket path>', "
                          f"got {setting!r}")
    return setting


