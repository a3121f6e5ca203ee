"""The driver registry: each driver declares itself once, in its own module, with a DriverSpec.

A spec is everything the rest of the edge knows of a driver: the kind of device it drives (the
device manager picks the actor for that kind), the bus the manager scans for it (and matches rules
on), the rule settings it cannot run without (the config loader refuses a rule lacking them), and
how to open it (the device actor calls that). Adding a driver is adding one module to drivers/ that
calls `register`: every module of this package is imported before the registry is first read, so
nothing else names drivers.

Drivers know nothing of actors or of the config: `open` gets the rule through `RuleSettings`, the
handful of settings drivers read.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from drivers.buses import SeenDevice
from drivers.hid_backend import HidBackend

BUSES = frozenset({"network", "serial", "hid", "usb", "none"})
"""Where the device manager looks for a device; "none": it lives on another device (a drawer on its printer)."""

_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class RuleSettings(Protocol):
    """The settings of a device rule that drivers read (novapos.config.DeviceRule has them all)."""

    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def path(self) -> str | None: ...
    @property
    def vendor_id(self) -> int | None: ...
    @property
    def product_id(self) -> int | None: ...
    @property
    def baudrate(self) -> int: ...
    @property
    def pin(self) -> int: ...


@dataclass(frozen=True)
class Target:
    """What a driver is opened on: its rule, where the device was seen this time, the shared HID backend."""

    rule: RuleSettings
    seen: SeenDevice | None
    hid: HidBackend


@dataclass(frozen=True)
class DriverSpec:
    """One driver, as the config loader, the device manager and the device actors see it.

    `needs` are rule settings that must be set for this driver (e.g. ("path",)). `open` makes the
    driver object for one device; None means the device has no driver of its own and is worked
    through the device it hangs off (a drawer pulsed by its printer)."""

    name: str
    kind: str
    bus: str
    needs: tuple[str, ...] = ()
    open: Callable[[Target], Any] | None = None


_specs: dict[str, DriverSpec] = {}


def register(spec: DriverSpec) -> DriverSpec:
    """Declare a driver. ValueError for a malformed spec or a name another spec already has."""
    if not _NAME.match(spec.name):
        raise ValueError(f"driver name {spec.name!r} must be lowercase words joined by '-'")
    if spec.bus not in BUSES:
        raise ValueError(f"driver {spec.name!r}: bus {spec.bus!r} is not one of {sorted(BUSES)}")
    known = _specs.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"driver {spec.name!r} is already registered")
    _specs[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget a driver (a test's own fake driver, once the test is over). No-op if unknown."""
    _specs.pop(name, None)


@cache
def _import_drivers() -> None:
    """Import every module of this package once: each registers the drivers it defines."""
    package = importlib.import_module(__package__ or "drivers")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def driver_spec(name: str) -> DriverSpec:
    """The spec of driver `name`; LookupError if no driver has that name."""
    _import_drivers()
    try:
        return _specs[name]
    except KeyError:
        raise LookupError(f"unknown driver {name!r}") from None


def driver_names() -> list[str]:
    """Every registered driver's name, sorted."""
    _import_drivers()
    return sorted(_specs)
