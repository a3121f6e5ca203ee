"""A simulated USB HID bus for CI and the demo, plus a unix-socket bridge to it.

hidapi cannot see virtual devices (uhid needs privileges), so only the enumeration/read layer is
simulated: `SimulatedHidBus` implements `drivers.hid_backend.HidBackend` and produces the very
reports a real scanner sends (HID POS scanned data reports, or keyboard boot reports with shift);
decoding, the driver and the device actors above it are the real code.

Behaviour, chosen to match real hardware closely enough for hot-plug tests:
- every open handle has its own report queue (like hidraw file descriptors); reports sent while no
  handle is open are lost, as with a real scanner nobody is polling;
- unplug (`remove_device`) makes every handle of that device raise DeviceGone on read at once, even
  mid-read; plugging a device in again at the same path is a new device (old handles stay dead);
- `read(size, timeout_ms)` returns one report cut to `size`, b"" on timeout, polls when
  `timeout_ms <= 0`; reading a closed handle raises DeviceGone.

The demo's devices live in another process than the store edge: `HidBusServer` serves a bus over a
unix stream socket, in the protocol of `drivers.hid_socket`, whose `HidSocketBackend` is the edge's
side (`hid_backend = "socket:<path>"`).
"""

from __future__ import annotations

import itertools
import logging
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.errors import DeviceGone
from drivers.hid_backend import (
    USAGE_BARCODE_SCANNER,
    USAGE_KEYBOARD,
    USAGE_PAGE_BARCODE_SCANNER,
    USAGE_PAGE_GENERIC_DESKTOP,
    HidDeviceInfo,
    HidHandle,
)
from drivers.hid_scanner import (
    KEY_CHARS,
    KEY_ENTER,
    KEYBOARD_REPORT_SIZE,
    POS_AIM_OFFSET,
    POS_CODE_ID_OFFSET,
    POS_DATA_MAX,
    POS_DATA_OFFSET,
    POS_FLAG_CONTINUED,
    POS_FLAGS_OFFSET,
    POS_REPORT_ID,
    POS_REPORT_SIZE,
    ScannerMode,
)
from drivers.hid_socket import MAX_FRAME, WireError, info_to_wire, recv_frame, send_frame

log = logging.getLogger(__name__)

LEFT_SHIFT = 0x02
_MAX_QUEUE = 4096  # reports per handle; beyond this the oldest are dropped (a stalled reader)


# --- what a scanner sends ---------------------------------------------------------------------------


def pos_reports(barcode: str, symbology: bytes = b"]E0", code_id: int = 0x64) -> list[bytes]:
    """The HID POS scanned data reports a scanner sends for `barcode` (layout: drivers.hid_scanner)."""
    data = barcode.encode("utf-8")
    chunks = [data[i:i + POS_DATA_MAX] for i in range(0, len(data), POS_DATA_MAX)] or [b""]
    reports = []
    for index, chunk in enumerate(chunks):
        report = bytearray(POS_REPORT_SIZE)
        report[0] = POS_REPORT_ID
        report[1] = len(chunk)
        report[POS_DATA_OFFSET:POS_DATA_OFFSET + len(chunk)] = chunk
        report[POS_AIM_OFFSET:POS_AIM_OFFSET + 3] = symbology[:3].ljust(3, b"\0")
        report[POS_CODE_ID_OFFSET] = code_id
        if index < len(chunks) - 1:
            report[POS_FLAGS_OFFSET] = POS_FLAG_CONTINUED
        reports.append(bytes(report))
    return reports


_CHAR_KEYS: dict[str, tuple[int, int]] = {}
for _code, (_plain, _shifted) in sorted(KEY_CHARS.items(), reverse=True):  # main keys win over keypad
    _CHAR_KEYS[_shifted] = (_code, LEFT_SHIFT)
    _CHAR_KEYS[_plain] = (_code, 0)
del _code, _plain, _shifted


def keyboard_reports(barcode: str, terminator: int = KEY_ENTER) -> list[bytes]:
    """The keyboard boot reports a keyboard-wedge scanner sends: press then release per character
    (shift held in the press report for shifted characters), then the terminator key."""
    reports = []
    for char in barcode:
        if char not in _CHAR_KEYS:
            raise ValueError(f"{char!r} cannot be typed on a US keyboard")
        code, modifiers = _CHAR_KEYS[char]
        reports.append(bytes([modifiers, 0, code, 0, 0, 0, 0, 0]))
        reports.append(bytes(KEYBOARD_REPORT_SIZE))
    reports.append(bytes([0, 0, terminator, 0, 0, 0, 0, 0]))
    reports.append(bytes(KEYBOARD_REPORT_SIZE))
    return reports


# --- the bus ----------------------------------------------------------------------------------------


@dataclass
class _Device:
    info: HidDeviceInfo
    mode: ScannerMode
    handles: set[_SimHandle] = field(default_factory=set)


class SimulatedHidBus:
    """HidBackend over simulated scanners. Thread-safe: plug, unplug and scan from any thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._devices: dict[bytes, _Device] = {}
        self.dropped_reports = 0  # sent while no handle was open, or past a handle's queue limit

    def add_device(self, path: bytes, vendor_id: int, product_id: int, serial_number: str | None = None,
                   product: str = "Simulated barcode scanner", mode: ScannerMode = "pos", *,
                   manufacturer: str = "NovaPOS simulator", interface_number: int = 0) -> HidDeviceInfo:
        """Plug a scanner in. Raises ValueError if something is already plugged in at `path`."""
        if mode not in ("pos", "keyboard"):
            raise ValueError(f"unknown scanner mode {mode!r}")
        usage_page, usage = ((USAGE_PAGE_BARCODE_SCANNER, USAGE_BARCODE_SCANNER) if mode == "pos"
                             else (USAGE_PAGE_GENERIC_DESKTOP, USAGE_KEYBOARD))
        info = HidDeviceInfo(bytes(path), vendor_id, product_id, serial_number, manufacturer, product,
                             usage_page, usage, interface_number)
        with self._cond:
            if info.path in self._devices:
                raise ValueError(f"a device is already plugged in at {path!r}")
            self._devices[info.path] = _Device(info, mode)
        return info

    def remove_device(self, path: bytes) -> None:
        """Unplug: open handles raise DeviceGone on read from now on. No-op if nothing is there."""
        with self._cond:
            device = self._devices.pop(bytes(path), None)
            if device is None:
                return
            for handle in device.handles:
                handle._gone = True
            device.handles.clear()
            self._cond.notify_all()

    def scan(self, path: bytes, barcode: str, *, symbology: bytes = b"]E0") -> int:
        """Scan `barcode` on the device at `path`: queue the reports it would send in its mode.

        Returns how many open handles received them (0: nobody was reading, the scan is lost).
        Raises KeyError if no device is plugged in at `path`."""
        with self._cond:
            device = self._device(path)
            reports = pos_reports(barcode, symbology) if device.mode == "pos" else keyboard_reports(barcode)
            return self._deliver(device, reports)

    def send_raw(self, path: bytes, report: bytes) -> int:
        """Queue one arbitrary report (malformed-data tests). Same return and errors as `scan`."""
        with self._cond:
            return self._deliver(self._device(path), [bytes(report)])

    def open_handles(self, path: bytes) -> int:
        with self._cond:
            device = self._devices.get(bytes(path))
            return len(device.handles) if device else 0

    def _device(self, path: bytes) -> _Device:
        device = self._devices.get(bytes(path))
        if device is None:
            raise KeyError(f"no simulated HID device at {path!r}")
        return device

    def _deliver(self, device: _Device, reports: list[bytes]) -> int:
        if not device.handles:
            self.dropped_reports += len(reports)
        for handle in device.handles:
            for report in reports:
                if len(handle._queue) >= _MAX_QUEUE:
                    handle._queue.popleft()
                    self.dropped_reports += 1
                handle._queue.append(report)
        self._cond.notify_all()
        return len(device.handles)

    # HidBackend

    def enumerate(self) -> list[HidDeviceInfo]:
        with self._cond:
            return [device.info for device in self._devices.values()]

    def open(self, path: bytes) -> HidHandle:
        with self._cond:
            device = self._devices.get(bytes(path))
            if device is None:
                raise DeviceGone(f"no HID device at {path!r}")
            handle = _SimHandle(self, device)
            device.handles.add(handle)
            return handle


class _SimHandle:
    def __init__(self, bus: SimulatedHidBus, device: _Device) -> None:
        self._bus = bus
        self._device = device
        self._path = device.info.path
        self._queue: deque[bytes] = deque()
        self._gone = False
        self._closed = False

    def read(self, size: int, timeout_ms: int) -> bytes:
        cond = self._bus._cond
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        with cond:
            while True:
                if self._closed:
                    raise DeviceGone(f"HID handle for {self._path!r} is closed")
                if self._gone:
                    raise DeviceGone(f"HID device {self._path!r} was unplugged")
                if self._queue:
                    return self._queue.popleft()[:max(0, size)]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return b""
                cond.wait(remaining)

    def close(self) -> None:
        with self._bus._cond:
            self._closed = True
            self._queue.clear()
            self._device.handles.discard(self)
            self._bus._cond.notify_all()


# --- the unix socket server (the edge side is drivers.hid_socket) ----------------------------------

_MAX_CONNECTIONS = 64


class _BadRequest(Exception):
    pass


class HidBusServer:
    """Serves a HidBackend (normally a SimulatedHidBus) on a unix stream socket, one thread per client.

    Reads are capped at `max_read_ms`. A client that disconnects, or sends garbage, loses only its
    own connection (garbage inside a well-formed frame only gets an error reply)."""

    def __init__(self, bus: Any, socket_path: Path, *, max_read_ms: int = 5000) -> None:
        self.bus = bus
        self.socket_path = Path(socket_path)
        self.max_read_ms = max_read_ms
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: dict[socket.socket, tuple[threading.Thread, dict[int, HidHandle]]] = {}
        self._stopping = False
        self._handle_ids = itertools.count(1)

    def start(self) -> HidBusServer:
        if self._listener is not None:
            raise RuntimeError("HidBusServer already started")
        if self.socket_path.is_socket():
            self.socket_path.unlink()  # left by a previous run
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.socket_path))
            listener.listen(16)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"hid-bus-server {self.socket_path.name}",
                                               daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: clients see their connections close; their handles are closed. Idempotent."""
        with self._lock:
            if self._listener is None:
                return
            self._stopping = True
            connections = list(self._connections.items())
        assert self._wake_w is not None
        self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        for conn, (_thread, handles) in connections:
            self._close_handles(handles)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _conn, (thread, _handles) in connections:
            thread.join(5)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._listener = self._wake_r = self._wake_w = None
        self._accept_thread = None
        try:
            if self.socket_path.is_socket():
                self.socket_path.unlink()
        except OSError:
            pass

    def __enter__(self) -> HidBusServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        listener, wake = self._listener, self._wake_r
        assert listener is not None and wake is not None
        while True:
            try:
                ready, _, _ = select.select([listener, wake], [], [])
            except (OSError, ValueError):
                return
            if wake in ready:
                return
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                log.debug("hid bus server: accept: %s", exc)
                continue
            with self._lock:
                if self._stopping or len(self._connections) >= _MAX_CONNECTIONS:
                    conn.close()
                    continue
                handles: dict[int, HidHandle] = {}
                thread = threading.Thread(target=self._serve, args=(conn, handles), daemon=True,
                                          name=f"hid-bus-conn {self.socket_path.name}")
                self._connections[conn] = (thread, handles)
            thread.start()

    def _serve(self, conn: socket.socket, handles: dict[int, HidHandle]) -> None:
        try:
            while True:
                try:
                    request = recv_frame(conn)
                except ValueError as exc:
                    reply: dict[str, Any] = {"ok": False, "error": "bad_request", "message": str(exc)}
                else:
                    reply = self._reply(request, handles)
                send_frame(conn, reply)
        except (WireError, OSError):
            pass  # client went away or spoke nonsense framing: drop this connection only
        except Exception:
            log.exception("hid bus server: connection failed")
        finally:
            self._close_handles(handles)
            with self._lock:
                self._connections.pop(conn, None)
            conn.close()

    def _reply(self, request: Any, handles: dict[int, HidHandle]) -> dict[str, Any]:
        try:
            return {"ok": True, **self._dispatch(request, handles)}
        except DeviceGone as exc:
            return {"ok": False, "error": "gone", "message": str(exc)}
        except _BadRequest as exc:
            return {"ok": False, "error": "bad_request", "message": str(exc)}
        except Exception as exc:
            log.exception("hid bus server: request %r failed", request)
            return {"ok": False, "error": "bad_request", "message": f"{type(exc).__name__}: {exc}"}

    @staticmethod
    def _int(request: dict[str, Any], key: str) -> int:
        value = request.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _BadRequest(f"{key!r} must be an integer")
        return value

    def _dispatch(self, request: Any, handles: dict[int, HidHandle]) -> dict[str, Any]:
        if not isinstance(request, dict):
            raise _BadRequest("request must be a map")
        op = request.get("op")
        if op == "enumerate":
            return {"devices": [info_to_wire(info) for info in self.bus.enumerate()]}
        if op == "open":
            path = request.get("path")
            if not isinstance(path, bytes):
                raise _BadRequest("'path' must be bytes")
            handle = self.bus.open(path)
            with self._lock:
                if self._stopping:
                    handle.close()
                    raise DeviceGone("server stopping")
                handle_id = next(self._handle_ids)
                handles[handle_id] = handle
            return {"handle": handle_id}
        if op == "read":
            handle_id, size, timeout_ms = self._int(request, "handle"), self._int(request, "size"), self._int(request, "timeout_ms")
            handle = handles.get(handle_id)
            if handle is None:
                raise DeviceGone(f"no open handle {handle_id}")
            if not 0 < size <= MAX_FRAME // 2:
                raise _BadRequest(f"bad read size {size}")
            return {"data": handle.read(size, min(timeout_ms, self.max_read_ms))}
        if op == "close":
            handle = handles.pop(self._int(request, "handle"), None)
            if handle is not None:
                handle.close()
            return {}
        raise _BadRequest(f"unknown op {op!r}")

    def _close_handles(self, handles: dict[int, HidHandle]) -> None:
        with self._lock:
            doomed = list(handles.values())
            handles.clear()
        for handle in doomed:
            try:
                handle.close()
            except Exception:
                log.debug("hid bus server: closing a handle failed", exc_info=True)
