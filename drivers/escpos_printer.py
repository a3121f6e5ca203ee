"""ESC/POS receipt printer on a raw TCP socket (port 9100 style).

Prints a small, meaning-free document model and reads the printer's
real-time status. Built on python-escpos: `Dummy` encodes a whole job in
memory (styles, code pages, cut) so it goes out in one write, and `Network`
writes it and reads status replies on the socket. Printer profiles come from
the capabilities file bundled with python-escpos; nothing is fetched from the
network.

Blocking calls, serialised by a lock: from trio, use trio.to_thread.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Literal

from escpos.constants import CD_KICK_2, CD_KICK_5, RT_MASK_ONLINE, RT_STATUS_ONLINE, RT_STATUS_PAPER
from escpos.printer import Dummy, Network

Align = Literal["left", "center", "right"]
PaperState = Literal["ok", "near_end", "out", "unknown"]

_DRAWER_PULSE = {2: CD_KICK_2, 5: CD_KICK_5}  # ESC p 0 / ESC p 1, 100 ms on, 100 ms off
# Every DLE EOT reply has bits 1 and 4 set and bits 0 and 7 clear: this is
# how a status byte is told apart from anything else the printer sends.
_STATUS_FIXED_MASK = 0x93
_STATUS_FIXED_BITS = 0x12
_PAPER_NEAR_END = 0x0C  # DLE EOT 4, bits 2-3: near-end sensor
_PAPER_END = 0x60  # DLE EOT 4, bits 5-6: paper-end sensor


class PrinterUnavailable(Exception):
    """The printer could not be reached, or the connection broke mid-job."""


@dataclass(frozen=True)
class PrintLine:
    """One line of text with its styling."""

    text: str
    align: Align = "left"
    bold: bool = False
    double: bool = False  # double width and height

    def __post_init__(self) -> None:
        if self.align not in ("left", "center", "right"):
            raise ValueError(f"align must be left, center or right, not {self.align!r}")


@dataclass(frozen=True)
class PrintDocument:
    """A print job: lines, then an optional cut and drawer pulse."""

    lines: tuple[PrintLine, ...]
    cut: bool = True
    open_drawer: bool = False


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer reports in real time.

    online is False when the printer says it is offline (paper end, cover
    open) or does not answer at all; paper is 'unknown' in the latter case.
    """

    online: bool
    paper: PaperState


_UNREACHABLE = PrinterStatus(online=False, paper="unknown")


class EscPosPrinter:
    """A network ESC/POS printer; connects lazily, reconnects after failures."""

    def __init__(
        self,
        host: str,
        port: int = 9100,
        timeout: float = 3.0,
        profile: str = "default",
        drawer_pin: int = 2,
    ) -> None:
        """timeout bounds connect, each send and each status reply; profile
        names a python-escpos printer profile (code pages, cut support);
        drawer_pin is the connector pin (2 or 5) the drawer is wired to."""
        _check_pin(drawer_pin)
        self._profile = profile
        self._drawer_pin = drawer_pin
        self._printer = Network(host, port=port, timeout=timeout, profile=profile)
        self._timeout = timeout
        self._connected = False
        self._lock = threading.Lock()

    def __enter__(self) -> EscPosPrinter:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection now (else the first call does); idempotent."""
        with self._lock:
            self._ensure_connected()

    def close(self) -> None:
        """Close the connection; later calls reconnect."""
        with self._lock:
            self._disconnect()

    def print_document(self, doc: PrintDocument) -> None:
        """Send the whole job in one write: lines, then cut and drawer pulse.

        Delivery to the printer's TCP stack is all TCP can confirm; call
        status() to learn whether the printer can print (paper, offline).
        """
        job = self._encode(doc)
        with self._lock:
            self._send(job)

    def kick_drawer(self, pin: int | None = None) -> None:
        """Pulse the drawer connector (ESC p), on `pin` or the configured one."""
        pin = self._drawer_pin if pin is None else pin
        _check_pin(pin)
        with self._lock:
            self._send(_DRAWER_PULSE[pin])

    def status(self) -> PrinterStatus:
        """Ask DLE EOT 1 (online) and 4 (paper); never raises for an absent printer.

        A printer that cannot be reached or does not answer within the timeout
        is reported offline with paper 'unknown'.
        """
        with self._lock:
            try:
                self._ensure_connected()
            except PrinterUnavailable:
                return _UNREACHABLE
            printer = self._query(RT_STATUS_ONLINE)
            paper = self._query(RT_STATUS_PAPER) if printer is not None else None
            if printer is None or paper is None:
                self._disconnect()  # a late reply must not be read as the next one
                return _UNREACHABLE
        if paper & _PAPER_END:
            paper_state: PaperState = "out"
        elif paper & _PAPER_NEAR_END:
            paper_state = "near_end"
        else:
            paper_state = "ok"
        return PrinterStatus(online=not (printer & RT_MASK_ONLINE), paper=paper_state)

    # -- internals ---------------------------------------------------------------

    def _encode(self, doc: PrintDocument) -> bytes:
        """The job's bytes, built in memory with the printer's profile."""
        job = Dummy(profile=self._profile)
        job.hw("INIT")
        for line in doc.lines:
            job.set(
                align=line.align,
                bold=line.bold,
                normal_textsize=not line.double,
                double_width=line.double,
                double_height=line.double,
            )
            job.textln(line.text)
        if doc.cut:
            job.cut()  # feeds to the cutter first; sends nothing if the profile has no cutter
        if doc.open_drawer:
            job.cashdraw(self._drawer_pin)
        return job.output

    # The methods below touch the socket: call them with the lock held.

    def _ensure_connected(self) -> None:
        if self._connected and not self._discard_input():
            self._disconnect()  # the printer closed its side: reconnect
        if self._connected:
            return
        # Not Network.open(): it is IPv4 only and leaks the socket when connect fails.
        address = (self._printer.host, self._printer.port)
        try:
            self._printer.device = socket.create_connection(address, timeout=self._timeout)
        except OSError as exc:
            raise PrinterUnavailable(f"cannot connect to printer {address[0]}:{address[1]}: {exc}") from exc
        self._connected = True

    def _disconnect(self) -> None:
        if self._connected:
            self._printer.close()
            self._connected = False

    def _socket(self) -> socket.socket:
        device = self._printer.device  # only read while connected: it auto-opens otherwise
        assert isinstance(device, socket.socket)
        return device

    def _discard_input(self) -> bool:
        """Drop unread bytes (late status replies); False if the peer closed."""
        sock = self._socket()
        sock.setblocking(False)
        try:
            while sock.recv(4096):
                pass
            return False  # orderly close from the printer
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            sock.settimeout(self._timeout)

    def _send(self, data: bytes) -> None:
        self._ensure_connected()
        try:
            self._printer._raw(data)
        except OSError as exc:
            self._disconnect()
            raise PrinterUnavailable(f"printer connection lost while sending: {exc}") from exc

    def _query(self, request: bytes) -> int | None:
        """Send a DLE EOT request; its status byte, or None if none came."""
        try:
            reply = self._printer.query_status(request)
        except OSError:  # includes the socket timeout
            return None
        if not reply or reply[0] & _STATUS_FIXED_MASK != _STATUS_FIXED_BITS:
            return None
        return reply[0]


def _check_pin(pin: int) -> None:
    if pin not in _DRAWER_PULSE:
        raise ValueError(f"drawer pin must be 2 or 5, not {pin!r}")
