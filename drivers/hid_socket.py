"""A HID bus reached over a unix socket: the HidBackend for `hid_backend = "socket:<path>"`.

Whoever owns the USB HID devices serves them on a unix stream socket, and the edge reads them as if
through hidapi. The demo's simulated scanners are served this way (mocks.hid_bus.HidBusServer); a
helper process holding real hidraw devices could be too.

The protocol. Every message, each way, is one frame: a 4-byte big-endian length, then that many
bytes of msgpack (at most `MAX_FRAME`), a map. Requests and their replies:

- ``{"op": "enumerate"}`` -> ``{"ok": true, "devices": [device, ...]}``; a device is a map with
  the fields of `HidDeviceInfo` (path as bytes).
- ``{"op": "open", "path": bytes}`` -> ``{"ok": true, "handle": int}``.
- ``{"op": "read", "handle": int, "size": int, "timeout_ms": int}`` -> ``{"ok": true, "data": bytes}``:
  one input report cut to `size`, b"" when none came within `timeout_ms` (the server may cap it).
- ``{"op": "close", "handle": int}`` -> ``{"ok": true}``.
- Refusals: ``{"ok": false, "error": "gone", "message": str}`` when the device is not there (unplugged,
  unknown handle): the client raises DeviceGone; ``{"ok": false, "error": "bad_request", ...}`` for
  a request the server cannot read.

One request at a time per connection, answered in order. Handles belong to the connection that
opened them and are closed when it goes away. The client uses one connection per open handle (so a
blocking read never holds up enumeration) and a short-lived one per enumeration.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgpack

from drivers.errors import DeviceGone
from drivers.hid_backend import HidDeviceInfo, HidHandle

log = logging.getLogger(__name__)

SETTING_PREFIX = "socket:"
"""`hid_backend = "socket:<path>"` selects this backend on the unix socket at <path>."""
MAX_FRAME = 64 * 1024
_HEADER = struct.Struct(">I")


class WireError(Exception):
    """The peer sent something that is not a frame, or went away."""


def send_frame(sock: socket.socket, message: dict[str, Any]) -> None:
    payload = msgpack.packb(message, use_bin_type=True)
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise WireError("connection closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> Any:
    """One decoded frame. Raises WireError if the stream is unusable, ValueError if the payload is bad."""
    (length,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if length > MAX_FRAME:
        raise WireError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    payload = _recv_exact(sock, length)
    try:
        return msgpack.unpackb(payload, raw=False)
    except Exception as exc:
        raise ValueError(f"undecodable payload: {exc}") from exc


def info_to_wire(info: HidDeviceInfo) -> dict[str, Any]:
    return asdict(info)


def info_from_wire(data: Any) -> HidDeviceInfo:
    if not isinstance(data, dict) or not isinstance(data.get("path"), bytes):
        raise ValueError(f"bad device entry {data!r}")
    serial = data.get("serial_number")
    return HidDeviceInfo(
        path=data["path"], vendor_id=int(data["vendor_id"]), product_id=int(data["product_id"]),
        serial_number=serial if isinstance(serial, str) else None,
        manufacturer=str(data.get("manufacturer", "")), product=str(data.get("product", "")),
        usage_page=int(data.get("usage_page", 0)), usage=int(data.get("usage", 0)),
        interface_number=int(data.get("interface_number", -1)))


class HidSocketBackend:
    """HidBackend on a HID bus served over a unix socket. Thread-safe (each handle has its own connection).

    A server that is down or unreachable looks like an empty bus to `enumerate()` (one warning line
    when it goes down); `open()` raises DeviceGone, and handles raise DeviceGone on read."""

    def __init__(self, socket_path: Path | str, *, connect_timeout: float = 1.0, io_margin: float = 2.0) -> None:
        self.socket_path = Path(socket_path)
        self.connect_timeout = connect_timeout
        self.io_margin = io_margin  # how much longer than a read's own timeout a reply may take
        self._lock = threading.Lock()
        self._server_down = False

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    def enumerate(self) -> list[HidDeviceInfo]:
        try:
            with self._connect() as sock:
                reply = _call(sock, {"op": "enumerate"}, self.connect_timeout + self.io_margin)
            devices = [info_from_wire(entry) for entry in reply["devices"]]
        except (OSError, WireError, ValueError, KeyError, TypeError, DeviceGone) as exc:
            with self._lock:
                first, self._server_down = not self._server_down, True
            log.log(logging.WARNING if first else logging.DEBUG,
                    "HID bus socket %s unreachable (%s): no HID devices until it answers; is its server running?",
                    self.socket_path, exc)
            return []
        with self._lock:
            if self._server_down:
                log.info("HID bus socket %s reachable again", self.socket_path)
            self._server_down = False
        return devices

    def open(self, path: bytes) -> HidHandle:
        try:
            sock = self._connect()
        except OSError as exc:
            raise DeviceGone(f"HID bus socket {self.socket_path} unreachable: {exc}") from exc
        try:
            reply = _call(sock, {"op": "open", "path": bytes(path)}, self.connect_timeout + self.io_margin)
            handle_id = reply["handle"]
        except BaseException as exc:
            sock.close()
            if isinstance(exc, (OSError, WireError, ValueError, KeyError)):
                raise DeviceGone(f"cannot open HID device {path!r} on {self.socket_path}: {exc}") from exc
            raise
        return _SocketHandle(sock, handle_id, bytes(path), self.io_margin)


def _call(sock: socket.socket, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request/response. Raises DeviceGone for a "gone" reply, WireError/OSError if the link broke."""
    sock.settimeout(timeout)
    send_frame(sock, request)
    reply = recv_frame(sock)
    if not isinstance(reply, dict):
        raise WireError(f"bad reply {reply!r}")
    if not reply.get("ok"):
        if reply.get("error") == "gone":
            raise DeviceGone(str(reply.get("message", "device gone")))
        raise WireError(f"server refused {request.get('op')}: {reply.get('message')}")
    return reply


class _SocketHandle:
    def __init__(self, sock: socket.socket, handle_id: int, path: bytes, io_margin: float) -> None:
        self._sock: socket.socket | None = sock
        self._id = handle_id
        self._path = path
        self._io_margin = io_margin
        self._lock = threading.Lock()

    def read(self, size: int, timeout_ms: int) -> bytes:
        with self._lock:
            sock = self._sock
            if sock is None:
                raise DeviceGone(f"HID handle for {self._path!r} is closed")
            request = {"op": "read", "handle": self._id, "size": int(size), "timeout_ms": max(0, int(timeout_ms))}
            try:
                reply = _call(sock, request, max(0, timeout_ms) / 1000 + self._io_margin)
                data = reply["data"]
                if not isinstance(data, bytes):
                    raise WireError(f"bad read reply {reply!r}")
                return data
            except DeviceGone:
                self._drop()
                raise
            except (OSError, WireError, ValueError, KeyError) as exc:
                self._drop()
                raise DeviceGone(f"HID bus socket link lost while reading {self._path!r}: {exc}") from exc

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            try:
                _call(sock, {"op": "close", "handle": self._id}, self._io_margin)
            except Exception:
                pass  # the server closes the handle with the connection anyway
            self._drop()
