"""ESC/POS receipt printer on a raw TCP socket (port 9100 style), a serial port or USB.

Prints a small, meaning-free document model and reads the printer's
real-time status. Built on python-escpos: `Dummy` encodes a whole job in
memory (styles, code pages, cut) so it goes out in one write, and a
python-escpos printer of the right kind (`Network`, `Serial`, `Usb`) writes
it and reads status replies over a connection this module opens and closes
itself (see the link classes for why). Printer profiles come from the
capabilities file bundled with python-escpos; nothing is fetched from the
network. Text is printed in one code page (PC858, else PC437) through
drivers.device_text, never through python-escpos' text encoder: whatever a
line holds, it prints as characters and cannot become a command.

Blocking calls, serialised by a lock: from trio, use trio.to_thread.
"""

from __future__ import annotations

import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import serial
from escpos.capabilities import get_profile
from escpos.constants import CD_KICK_2, CD_KICK_5, CODEPAGE_CHANGE, RT_MASK_ONLINE, RT_STATUS_ONLINE, RT_STATUS_PAPER
from escpos.escpos import Escpos
from escpos.exceptions import Error as EscposError
from escpos.printer import Dummy, Network, Serial, Usb

from drivers import device_text
from drivers.errors import DeviceGone
from drivers.registry import DriverSpec, Target, register

PaperState = Literal["ok", "near_end", "out", "unknown"]

_CODE_PAGES = ("CP858", "CP437")  # preferred first; names as in python-escpos' printer profiles
_INTERNATIONAL_USA = b"\x1bR\x00"  # ESC R 0: 0x20-0x7E are plain ASCII, whatever the printer's DIP switches say
QR_DOT_SIZE = 6  # dots a module: about 2 cm wide for an order id, easy for a handheld scanner
_DRAWER_PULSE = {2: CD_KICK_2, 5: CD_KICK_5}  # ESC p 0 / ESC p 1, 100 ms on, 100 ms off
# Every DLE EOT reply has bits 1 and 4 set and bits 0 and 7 clear: this is
# how a status byte is told apart from anything else the printer sends.
_STATUS_FIXED_MASK = 0x93
_STATUS_FIXED_BITS = 0x12
_PAPER_NEAR_END = 0x0C  # DLE EOT 4, bits 2-3: near-end sensor
_PAPER_END = 0x60  # DLE EOT 4, bits 5-6: paper-end sensor
RT_STATUS_OFFLINE_CAUSE = b"\x10\x04\x02"  # DLE EOT 2
RT_STATUS_ERROR = b"\x10\x04\x03"  # DLE EOT 3
_COVER_OPEN = 0x04  # DLE EOT 2, bit 2
# DLE EOT 3 bits, most serious first, with what a person should do about each.
_ERRORS = (
    (0x20, "unrecoverable error: switch the printer off and on again"),
    (0x08, "autocutter error: clear the paper jam at the cutter"),
    (0x40, "auto-recoverable error (e.g. print head too hot): it resumes by itself"),
)


class PrinterUnavailable(DeviceGone):
    """The printer could not be reached, or the connection broke mid-job."""


class PrintableLine(Protocol):
    """One line of text with its styling, as the driver prints it."""

    @property
    def text(self) -> str: ...
    @property
    def align(self) -> str: ...  # "left", "center" or "right"
    @property
    def bold(self) -> bool: ...
    @property
    def double(self) -> bool: ...  # double width and height
    @property
    def kind(self) -> str: ...  # "text"; "qr": the text as a QR code; "cut": a cut mid-job


class Printable(Protocol):
    """A print job the driver can print: lines, then an optional cut and drawer pulse.

    A structural type, so the driver knows nothing of who lays jobs out (actors.printing.document)."""

    @property
    def lines(self) -> Sequence[PrintableLine]: ...
    @property
    def cut(self) -> bool: ...
    @property
    def open_drawer(self) -> bool: ...


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer reports in real time.

    online is False when the printer says it is offline (paper end, cover
    open, an error) or does not answer at all; paper is 'unknown' in the latter
    case. `problem` says, for a person, why a printer that has paper is offline
    (cover open, cutter jam...), when the printer tells.
    """

    online: bool
    paper: PaperState
    problem: str | None = None


_UNREACHABLE = PrinterStatus(online=False, paper="unknown")


class EscPosPrinter:
    """An ESC/POS printer; connects lazily, reconnects after failures.

    EscPosPrinter(host, port) is a network printer; see also the network(),
    serial() and usb() constructors.
    """

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
        self._setup(_TcpLink(host, port, timeout, profile), timeout, profile, drawer_pin)

    @classmethod
    def network(
        cls, host: str, port: int = 9100, timeout: float = 3.0, profile: str = "default", drawer_pin: int = 2
    ) -> EscPosPrinter:
        """A printer on a raw TCP port (9100 style); same as EscPosPrinter(host, port, ...)."""
        return cls(host, port, timeout, profile, drawer_pin)

    @classmethod
    def serial(
        cls, path: str, baudrate: int = 9600, timeout: float = 3.0, profile: str = "default", drawer_pin: int = 2
    ) -> EscPosPrinter:
        """A printer on a serial port (8N1, no flow control), e.g. /dev/ttyUSB0
        or a stable /dev/serial/by-id link."""
        _check_pin(drawer_pin)
        return cls._over(_SerialLink(path, baudrate, timeout, profile), timeout, profile, drawer_pin)

    @classmethod
    def usb(
        cls, vendor_id: int, product_id: int, timeout: float = 3.0, profile: str = "default", drawer_pin: int = 2
    ) -> EscPosPrinter:
        """A printer speaking USB natively (printer class, bulk endpoints 0x01/0x82).

        Needs pyusb, which NovaPOS does not install: RuntimeError without it.
        Untested: neither pyusb nor a USB printer is available to the tests.
        """
        _check_pin(drawer_pin)
        return cls._over(_UsbLink(vendor_id, product_id, timeout, profile), timeout, profile, drawer_pin)

    @classmethod
    def _over(cls, link: _Link, timeout: float, profile: str, drawer_pin: int) -> EscPosPrinter:
        printer = cls.__new__(cls)
        printer._setup(link, timeout, profile, drawer_pin)
        return printer

    def _setup(self, link: _Link, timeout: float, profile: str, drawer_pin: int) -> None:
        self._link = link
        self._timeout = timeout
        self._profile = profile
        self._drawer_pin = drawer_pin
        self._code_page, self._codec = _code_page(profile)
        self._native_qr = get_profile(profile).supports("qrCode")  # else the QR code is sent as a raster image
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

    def print_document(self, doc: Printable) -> None:
        """Send the whole job in one write: lines, then cut and drawer pulse.

        Delivery to the operating system (TCP stack, serial driver) is all a
        write can confirm; print_document_confirmed() waits for the printer.
        """
        job = self._encode(doc)
        with self._lock:
            self._send(job)

    def print_document_confirmed(self, doc: Printable) -> PrinterStatus:
        """Send the job, then ask the printer's status and wait for the answer.

        The printer takes its input in order, so its answer proves it
        received the whole job: received, not printed. A printer out of paper
        answers too, and its status says so (online False, paper 'out'): it
        may not print the job, and the caller decides whether to print again.
        PrinterUnavailable if the job cannot be sent or no answer comes within
        the timeout (plus, on a serial line, the job's transfer time): the
        printer may then have all, part or none of the job.
        """
        job = self._encode(doc)
        with self._lock:
            self._send(job)
            status = self._read_status(self._timeout + self._link.transfer_time(len(job)))
        if status is None:
            raise PrinterUnavailable(f"printer {self._link.where} did not confirm the job")
        return status

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
            return self._read_status(self._timeout) or _UNREACHABLE

    # -- internals ---------------------------------------------------------------

    def _encode(self, doc: Printable) -> bytes:
        """The job's bytes, built in memory with the printer's profile.

        Text never goes through python-escpos' text encoder (which passes control characters on,
        and switches code pages by itself): each line is made safe for the one code page selected
        here, by drivers.device_text, so a name on a receipt cannot pulse the drawer or cut. A QR code
        holds only printable ASCII: rendered by the printer (GS ( k, a block of declared length) when its
        profile has QR codes, else drawn here and sent as a raster image (GS v 0)."""
        job = Dummy(profile=self._profile)
        job.hw("INIT")
        job._raw(CODEPAGE_CHANGE + bytes((self._code_page,)) + _INTERNATIONAL_USA)
        for line in doc.lines:
            if line.kind == "cut":
                job.cut()
                continue
            if line.kind == "qr":
                job.set(align=line.align)
                job.qr(device_text.encode(line.text, "ascii").decode("ascii"), native=self._native_qr,
                       size=QR_DOT_SIZE)
                job._raw(b"\n")
                continue
            job.set(
                align=line.align,
                bold=line.bold,
                normal_textsize=not line.double,
                double_width=line.double,
                double_height=line.double,
            )
            job._raw(device_text.encode(line.text, self._codec) + b"\n")
        if doc.cut:
            job.cut()  # feeds to the cutter first; sends nothing if the profile has no cutter
        if doc.open_drawer:
            job.cashdraw(self._drawer_pin)
        return job.output

    # The methods below use the connection: call them with the lock held.

    def _ensure_connected(self) -> None:
        if self._connected and not self._link.discard_input():
            self._disconnect()  # the printer closed its side, or the port vanished: reconnect
        if self._connected:
            return
        self._link.open()
        self._connected = True

    def _disconnect(self) -> None:
        if self._connected:
            self._link.close()
            self._connected = False

    def _send(self, data: bytes) -> None:
        self._ensure_connected()
        try:
            self._link.escpos._raw(data)
        except OSError as exc:  # socket errors, SerialException, USBError
            self._disconnect()
            raise PrinterUnavailable(f"printer {self._link.where} lost while sending: {exc}") from exc

    def _read_status(self, wait: float) -> PrinterStatus | None:
        """Ask DLE EOT 1 and 4, waiting up to `wait` for the first answer; None if none came."""
        printer = self._query(RT_STATUS_ONLINE, wait)
        paper = self._query(RT_STATUS_PAPER, self._timeout) if printer is not None else None
        if printer is None or paper is None:
            self._disconnect()  # a late reply must not be read as the next one
            return None
        if paper & _PAPER_END:
            paper_state: PaperState = "out"
        elif paper & _PAPER_NEAR_END:
            paper_state = "near_end"
        else:
            paper_state = "ok"
        online = not (printer & RT_MASK_ONLINE)
        problem = None if online or paper_state == "out" else self._offline_cause()
        return PrinterStatus(online=online, paper=paper_state, problem=problem)

    def _offline_cause(self) -> str | None:
        """Why a printer with paper is offline (DLE EOT 2 and 3), only asked when it is."""
        error = self._query(RT_STATUS_ERROR, self._timeout)
        for bit, problem in _ERRORS:
            if error is not None and error & bit:
                return problem
        cause = self._query(RT_STATUS_OFFLINE_CAUSE, self._timeout)
        if cause is not None and cause & _COVER_OPEN:
            return "cover open: close the printer's cover"
        return None

    def _query(self, request: bytes, wait: float) -> int | None:
        """Send a DLE EOT request; its status byte, or None if none came."""
        try:
            reply = self._link.query(request, wait)
        except OSError:  # includes the socket timeout
            return None
        if not reply or reply[0] & _STATUS_FIXED_MASK != _STATUS_FIXED_BITS:
            return None
        return reply[0]


class _Link(ABC):
    """How the driver reaches one printer.

    `escpos` is the python-escpos printer whose _raw() sends and whose
    query_status() asks; its device is the connection the link opened, and
    is read only while open (python-escpos opens it by itself otherwise).
    """

    escpos: Escpos
    where: str  # names the printer in error messages

    @abstractmethod
    def open(self) -> None:
        """Connect; PrinterUnavailable if the printer cannot be reached."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect; never raises."""

    @abstractmethod
    def discard_input(self) -> bool:
        """Drop unread bytes (late status replies); False if the printer is gone."""

    @abstractmethod
    def query(self, request: bytes, wait: float) -> bytes:
        """Send a status request; the reply, or b"" / OSError if none came within `wait`."""

    def transfer_time(self, size: int) -> float:
        """Seconds the line needs to carry `size` bytes, if it is slow enough to matter."""
        return 0.0


class _TcpLink(_Link):
    """A raw TCP port (9100 style) through python-escpos Network.

    Not Network.open(): it is IPv4 only and leaks the socket when connect fails.
    """

    def __init__(self, host: str, port: int, timeout: float, profile: str) -> None:
        self.escpos = Network(host, port=port, timeout=timeout, profile=profile)
        self.where = f"{host}:{port}"
        self._address = (host, port)
        self._timeout = timeout

    def open(self) -> None:
        try:
            connection = socket.create_connection(self._address, timeout=self._timeout)
        except OSError as exc:
            raise PrinterUnavailable(f"cannot connect to printer {self.where}: {exc}") from exc
        # A job is followed by a tiny status query: without NODELAY, Nagle holds the query back
        # until the printer's delayed ACK (40 ms on Linux), on every confirmed print.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.escpos.device = connection

    def close(self) -> None:
        self.escpos.close()

    def discard_input(self) -> bool:
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

    def query(self, request: bytes, wait: float) -> bytes:
        sock = self._socket()
        sock.settimeout(wait)
        try:
            return self.escpos.query_status(request)
        finally:
            sock.settimeout(self._timeout)

    def _socket(self) -> socket.socket:
        device = self.escpos.device
        assert isinstance(device, socket.socket)
        return device


class _StatusByteSerial(Serial):
    """python-escpos Serial reading a status reply as soon as its one byte
    arrives: its own _read asks pyserial for 16 bytes, which always waits
    out the whole timeout (python-escpos issue #407 was the same slowness)."""

    def _read(self) -> bytes:
        device = self.device
        assert isinstance(device, serial.Serial)
        return device.read(1)


class _SerialLink(_Link):
    """A serial port through python-escpos Serial, on a pyserial port opened here.

    Not Serial.open()/close(): open sets no write timeout (a write to a
    stalled port would block for ever) and wraps errors in its own type;
    close drains the output first (tcdrain), which blocks on a stalled port
    and fails with termios.error, not an OSError, on a vanished one.
    """

    def __init__(self, path: str, baudrate: int, timeout: float, profile: str) -> None:
        self.escpos = _StatusByteSerial(devfile=path, baudrate=baudrate, timeout=timeout, profile=profile)
        self.where = path
        self._baudrate = baudrate
        self._timeout = timeout

    def open(self) -> None:
        try:
            self.escpos.device = serial.Serial(
                self.where, self._baudrate, timeout=self._timeout, write_timeout=self._timeout
            )
        except (OSError, ValueError) as exc:  # SerialException is an OSError
            raise PrinterUnavailable(f"cannot open printer port {self.where}: {exc}") from exc

    def close(self) -> None:
        self._port().close()
        self.escpos.device = False

    def discard_input(self) -> bool:
        port = self._port()
        try:
            port.read(port.in_waiting)  # in_waiting raises a bare OSError (EIO) once the port is gone
        except OSError:
            return False
        return True

    def query(self, request: bytes, wait: float) -> bytes:
        port = self._port()
        port.timeout = wait
        try:
            return self.escpos.query_status(request)
        finally:
            port.timeout = self._timeout

    def transfer_time(self, size: int) -> float:
        return size * 10 / self._baudrate  # 8N1: ten bits a byte

    def _port(self) -> serial.Serial:
        device = self.escpos.device
        assert isinstance(device, serial.Serial)
        return device


class _UsbLink(_Link):
    """A native USB printer through python-escpos Usb (pyusb). Untested here."""

    def __init__(self, vendor_id: int, product_id: int, timeout: float, profile: str) -> None:
        if not Usb.is_usable():
            raise RuntimeError("USB printers need pyusb (and libusb), which are not installed")
        self.escpos = Usb(vendor_id, product_id, timeout=int(timeout * 1000), profile=profile)  # pyusb: ms
        self.where = f"usb {vendor_id:04x}:{product_id:04x}"

    def open(self) -> None:
        try:
            self.escpos.open()
        except (EscposError, OSError, ValueError) as exc:  # not found, USBError, no libusb backend
            raise PrinterUnavailable(f"cannot open printer {self.where}: {exc}") from exc

    def close(self) -> None:
        try:
            self.escpos.close()
        except OSError:
            pass  # already unplugged: nothing left to release

    def discard_input(self) -> bool:
        return True  # a gone printer shows on the next write instead

    def query(self, request: bytes, wait: float) -> bytes:
        return bytes(self.escpos.query_status(request))  # pyusb's read timeout, not `wait`


def _code_page(profile: str) -> tuple[int, str]:
    """The ESC t table and Python codec receipts print in: PC858 (PC850, Western European, with €)
    when the profile lists it, else PC437, which every ESC/POS printer has."""
    tables = {name: int(table) for table, name in get_profile(profile).codePages.items()}
    name = next((name for name in _CODE_PAGES if name in tables), "CP437")
    return tables.get(name, 0), name.lower()


def _check_pin(pin: int) -> None:
    if pin not in _DRAWER_PULSE:
        raise ValueError(f"drawer pin must be 2 or 5, not {pin!r}")


PRINTER_TIMEOUT_S = 2.0  # bounds each write and status read: a printer that is away is offline quickly


def _open_network_printer(target: Target) -> EscPosPrinter:
    assert target.rule.host is not None and target.rule.port is not None  # the spec needs them
    return EscPosPrinter.network(target.rule.host, target.rule.port, timeout=PRINTER_TIMEOUT_S)


def _open_serial_printer(target: Target) -> EscPosPrinter:
    assert target.rule.path is not None  # the spec needs it
    return EscPosPrinter.serial(target.rule.path, target.rule.baudrate, timeout=PRINTER_TIMEOUT_S)


def _open_usb_printer(target: Target) -> EscPosPrinter:
    assert target.rule.vendor_id is not None and target.rule.product_id is not None  # the spec needs them
    return EscPosPrinter.usb(target.rule.vendor_id, target.rule.product_id, timeout=PRINTER_TIMEOUT_S)


register(DriverSpec("escpos-network", kind="printer", bus="network", needs=("host", "port"), open=_open_network_printer))
register(DriverSpec("escpos-serial", kind="printer", bus="serial", needs=("path",), open=_open_serial_printer))
register(DriverSpec("escpos-usb", kind="printer", bus="usb", needs=("vendor_id", "product_id"), open=_open_usb_printer))
