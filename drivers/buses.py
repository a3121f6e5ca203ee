"""Bus enumeration: what is plugged in right now, on each bus, without opening any device.

Kept apart from the drivers, as mature POS device hubs do: the device manager enumerates buses on a
short interval and matches what it sees to configured rules; a driver is only opened for a device
that matched. Each function returns what it saw, or raises BusUnavailable when it could not look
(so the manager does not mistake "could not look" for "everything was unplugged").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from serial.tools import list_ports

from drivers.hid_backend import HidBackend

SYSFS_USB = Path("/sys/bus/usb/devices")


class BusUnavailable(Exception):
    """The bus could not be enumerated this time; what was on it is unknown, not gone."""


@dataclass(frozen=True)
class SeenDevice:
    """One device present on a bus. `address` is where it is now (path, host:port); not its identity."""
    bus: str
    address: str
    vendor_id: int | None = None
    product_id: int | None = None
    serial_number: str | None = None
    description: str = ""
    hid_path: bytes | None = None

    def label(self) -> str:
        ids = f" {self.vendor_id:04x}:{self.product_id:04x}" if self.vendor_id is not None and self.product_id is not None else ""
        serial = f" serial {self.serial_number}" if self.serial_number else ""
        return f"{self.bus} device at {self.address}{ids}{serial} {self.description}".rstrip()


def scan_hid(backend: HidBackend) -> list[SeenDevice]:
    try:
        infos = backend.enumerate()
    except Exception as exc:  # a broken backend must not look like "all scanners unplugged"
        raise BusUnavailable(f"HID enumeration failed: {exc}") from exc
    return [SeenDevice("hid", info.path.decode(errors="replace"), info.vendor_id, info.product_id,
                       info.serial_number or None, info.product or "", hid_path=info.path)
            for info in infos]


def scan_serial(configured_paths: Iterable[str]) -> list[SeenDevice]:
    """The system's serial ports (with USB ids where known) plus configured paths that exist now.

    Configured paths are usually /dev/serial/by-id links: present exactly while the device is."""
    seen: dict[str, SeenDevice] = {}
    try:
        for port in list_ports.comports():
            seen[os.path.realpath(port.device)] = SeenDevice(
                "serial", port.device, port.vid, port.pid, port.serial_number, port.description or "")
    except OSError as exc:
        raise BusUnavailable(f"serial port listing failed: {exc}") from exc
    for path in configured_paths:
        if os.path.exists(path):
            real = os.path.realpath(path)
            known = seen.pop(real, None)
            seen[real] = SeenDevice("serial", path, known.vendor_id if known else None,
                                    known.product_id if known else None, known.serial_number if known else None,
                                    known.description if known else "")
    return list(seen.values())


def _sysfs_text(folder: Path, name: str) -> str | None:
    try:
        return (folder / name).read_text().strip()
    except OSError:
        return None


def scan_usb(root: Path = SYSFS_USB) -> list[SeenDevice]:
    """USB devices from sysfs (vendor, product, serial), for USB printers driven through python-escpos."""
    if not root.exists():
        return []
    seen = []
    for folder in sorted(root.iterdir()):
        vendor, product = _sysfs_text(folder, "idVendor"), _sysfs_text(folder, "idProduct")
        if vendor is None or product is None:
            continue
        seen.append(SeenDevice("usb", folder.name, int(vendor, 16), int(product, 16),
                               _sysfs_text(folder, "serial"), _sysfs_text(folder, "product") or ""))
    return seen


def probe_network(endpoints: Iterable[tuple[str, int]], timeout: float = 0.2) -> list[SeenDevice]:
    """Configured network devices that accept a TCP connection now (connect, then close at once)."""
    seen = []
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                seen.append(SeenDevice("network", f"{host}:{port}"))
        except OSError:
            continue
    return seen
