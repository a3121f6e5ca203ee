"""The narrow part of hidapi that NovaPOS uses, as Protocols, and the real implementation on hidapi.

Everything above this seam (report decoding, the scanner driver, device actors) is the same code in a
store and in CI; only enumeration and raw report reads are swapped, for a HID bus served on a unix
socket (`drivers.hid_socket`: the demo's and CI's simulated scanners) when there is no USB hardware.

Contract of the seam:
- `HidBackend.enumerate()` lists HID interfaces present now, without opening them.
- `HidBackend.open(path)` opens one interface, or raises `DeviceGone` (not there, or not openable).
- `HidHandle.read(size, timeout_ms)` returns one input report (at most `size` bytes; for devices with
  numbered reports the first byte is the report id), or b"" when nothing arrived within
  `timeout_ms`; `timeout_ms <= 0` polls without waiting. It raises `DeviceGone` when the device
  vanished or the handle is closed. It never blocks longer than `timeout_ms` (plus scheduling).
- `HidHandle.close()` is idempotent and never raises.

Facts about the `hid` module (PyPI `hidapi`, cython-hidapi 0.15) that this wrapper absorbs:
- `hid.enumerate(vid, pid)` returns dicts with keys path (bytes), vendor_id, product_id,
  serial_number, release_number, manufacturer_string, product_string, usage_page, usage,
  interface_number. Missing strings come back as "" (never None): "" serial -> None here.
- `device.read(max_length, timeout_ms)` returns a *list of ints*, not bytes; [] on timeout.
  `timeout_ms=0` (the default) does not mean "poll": it calls the blocking `hid_read`, which waits
  forever unless `set_nonblocking(1)` was called. This wrapper never passes 0.
- A read on an unplugged device makes hid_read_timeout return -1, which the binding raises as
  `OSError('read error')`; `open_path` failure is `OSError('open failed')` (also for "permission
  denied"); any call on a closed device raises `ValueError('not open')`. All become DeviceGone.
- hidapi is not safe for closing a device while another thread is inside read on it, so a handle
  serialises read and close with a lock (close waits at most one read timeout).
- The Linux wheel's `hid` module is the libusb backend (the wheel also ships a `hidraw` module):
  opening an interface detaches the kernel driver, so a keyboard-wedge scanner stops typing into the
  console while NovaPOS holds it. Paths look like b"1-4.2:1.0" (bus-ports:config.interface): stable
  for a physical port, not for a device. Identify devices by serial number, not path.
- Another PyPI package, `hid` (ctypes, `hid.Device`), installs the same import name with a
  different API; it is treated like a missing library.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from drivers.errors import DeviceGone

log = logging.getLogger(__name__)

# HID usage pages/usages a scanner shows itself with (HID Usage Tables; HID Point of Sale Usage Tables).
USAGE_PAGE_GENERIC_DESKTOP = 0x01
USAGE_KEYBOARD = 0x06  # on USAGE_PAGE_GENERIC_DESKTOP: keyboard-wedge scanners
USAGE_PAGE_BARCODE_SCANNER = 0x8C
USAGE_BARCODE_SCANNER = 0x02  # on USAGE_PAGE_BARCODE_SCANNER: HID POS scanners


@dataclass(frozen=True)
class HidDeviceInfo:
    """One HID interface seen on the bus (a composite scanner shows up once per interface)."""

    path: bytes
    vendor_id: int
    product_id: int
    serial_number: str | None = None
    manufacturer: str = ""
    product: str = ""
    usage_page: int = 0
    usage: int = 0
    interface_number: int = -1


@runtime_checkable
class HidHandle(Protocol):
    def read(self, size: int, timeout_ms: int) -> bytes:
        """One input report, b"" on timeout; raises DeviceGone if the device vanished."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class HidBackend(Protocol):
    def enumerate(self) -> list[HidDeviceInfo]: ...

    def open(self, path: bytes) -> HidHandle:
        """Open one interface; raises DeviceGone if it is not there or cannot be opened."""
        ...


def _import_hid() -> ModuleType:
    import hid

    return hid


class RealHidBackend:
    """HidBackend on the `hid` module of the `hidapi` package. Thread-safe."""

    def __init__(self, loader: Callable[[], ModuleType] = _import_hid) -> None:
        self._loader = loader
        self._module: ModuleType | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        log.log(logging.WARNING if first else logging.DEBUG, message, *args)

    def _hid(self) -> ModuleType | None:
        if self._module is not None:
            return self._module
        try:
            module = self._loader()
        except (ImportError, OSError) as exc:
            self._warn_once("import", "hidapi unavailable (%s): no HID devices will be seen", exc)
            return None
        if not (callable(getattr(module, "enumerate", None)) and callable(getattr(module, "device", None))):
            self._warn_once("api", "the imported 'hid' module is not hidapi's (no hid.device): no HID devices will be seen")
            return None
        self._module = module
        return module

    def enumerate(self) -> list[HidDeviceInfo]:
        hid = self._hid()
        if hid is None:
            return []
        try:
            raw = hid.enumerate(0, 0)
        except Exception as exc:
            self._warn_once("enumerate", "hidapi enumerate failed: %s", exc)
            return []
        infos = []
        for entry in raw:
            try:
                infos.append(_info_from_hidapi(entry))
            except (KeyError, TypeError, ValueError) as exc:
                log.debug("skipping unreadable hidapi entry %r: %s", entry, exc)
        return infos

    def open(self, path: bytes) -> HidHandle:
        hid = self._hid()
        if hid is None:
            raise DeviceGone("hidapi is not available")
        try:
            device = hid.device()
            device.open_path(bytes(path))
        except (OSError, ValueError, TypeError) as exc:
            raise DeviceGone(f"cannot open HID device {path!r}: {exc}") from exc
        return RealHidHandle(device, bytes(path))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _info_from_hidapi(entry: dict[str, Any]) -> HidDeviceInfo:
    path = entry["path"]
    if isinstance(path, str):
        path = path.encode()
    return HidDeviceInfo(
        path=bytes(path),
        vendor_id=int(entry["vendor_id"]),
        product_id=int(entry["product_id"]),
        serial_number=_text(entry.get("serial_number")) or None,
        manufacturer=_text(entry.get("manufacturer_string")),
        product=_text(entry.get("product_string")),
        usage_page=int(entry.get("usage_page") or 0),
        usage=int(entry.get("usage") or 0),
        interface_number=int(entry.get("interface_number", -1)),
    )


class RealHidHandle:
    """An open hidapi device. read and close are serialised (hidapi forbids close during read)."""

    def __init__(self, device: Any, path: bytes) -> None:
        self._device: Any | None = device
        self._path = path
        self._lock = threading.Lock()

    def read(self, size: int, timeout_ms: int) -> bytes:
        with self._lock:
            device = self._device
            if device is None:
                raise DeviceGone(f"HID device {self._path!r} is closed")
            try:
                # Never 0: the binding maps 0 to the blocking hid_read.
                data = device.read(int(size), max(1, int(timeout_ms)))
            except (OSError, ValueError) as exc:
                raise DeviceGone(f"HID device {self._path!r} read failed: {exc}") from exc
        return bytes(data)

    def close(self) -> None:
        with self._lock:
            device, self._device = self._device, None
        if device is not None:
            try:
                device.close()
            except Exception as exc:
                log.debug("closing HID device %r: %s", self._path, exc)
