"""ESC/POS as the simulated printers understand it, independent of transport.

`EscPosParser` turns a byte stream into events. A printer reads an unframed
byte stream: commands arrive split across TCP segments or serial reads and
carry binary parameters (image data, barcode data) that may look like
commands. The parser therefore knows the parameter length of every command
it may meet, keeps partial commands between `feed` calls, and turns the
stream into a few events the simulated printer acts on. Commands it does not
know are skipped (prefix and command byte); nothing it is fed makes it raise,
and it never buffers more than one command header, whatever length a
malformed header declares.

`SimulatedPrinter` is the printer those events drive (receipts, drawer
kicks, QR codes, paper sensors, DLE EOT answers), shared by the network and the serial
simulated printers, which only add a transport.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, HT = 0x0A, 0x09

# ESC t n table (Epson numbering) -> Python codec; unknown tables print as PC437.
_CODE_PAGES = {
    0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 13: "cp857",
    14: "cp737", 15: "iso8859_7", 16: "cp1252", 17: "cp866", 18: "cp852",
    19: "cp858", 39: "iso8859_2", 40: "iso8859_15", 45: "cp1250", 46: "cp1251",
    47: "cp1253", 48: "cp1254", 49: "cp1255", 50: "cp1256", 51: "cp1257",
    52: "cp1258",
}
_DEFAULT_CODEC = "cp437"


@dataclass(frozen=True)
class Text:
    """Printable characters added to the line buffer."""

    text: str


@dataclass(frozen=True)
class Feed:
    """Print the line buffer and feed `lines` lines (LF, ESC d n, ESC J n)."""

    lines: int


@dataclass(frozen=True)
class Init:
    """ESC @: clear the line buffer and reset modes."""


@dataclass(frozen=True)
class Cut:
    """A paper cut (GS V, ESC i, ESC m): ends one receipt."""


@dataclass(frozen=True)
class DrawerPulse:
    """A drawer kick on connector pin 2 or 5; real-time ones run even offline."""

    pin: int
    realtime: bool


@dataclass(frozen=True)
class StatusRequest:
    """DLE EOT n: the host asks for real-time status byte n (1..4)."""

    n: int


@dataclass(frozen=True)
class QrCode:
    """GS ( k: a QR code printed, with the payload the host stored for it (decoded as UTF-8)."""

    payload: str


Event = Text | Feed | Init | Cut | DrawerPulse | StatusRequest | QrCode

# A command's size, read from the parameter bytes seen so far (after the two
# command bytes): None = need more bytes, else (parameter bytes, data bytes to
# skip after them), with data == _UNTIL_NUL for NUL-terminated data.
_Size = tuple[int, int] | None
_UNTIL_NUL = -1


def _fixed(n: int) -> Callable[[bytes], _Size]:
    return lambda p: (n, 0) if len(p) >= n else None


def _gs_cut(p: bytes) -> _Size:
    # GS V m (m = 0, 1, 48, 49) or GS V m n (m = 65, 66, 97, 98, 103, 104).
    if not p:
        return None
    n = 2 if p[0] in (65, 66, 97, 98, 103, 104) else 1
    return (n, 0) if len(p) >= n else None


def _barcode(p: bytes) -> _Size:
    # GS k m d1..dk NUL (m <= 6) or GS k m n d1..dn (m >= 65).
    if not p:
        return None
    if p[0] <= 6:
        return 1, _UNTIL_NUL
    return (2, p[1]) if len(p) >= 2 else None


def _function_block(p: bytes) -> _Size:
    # GS ( fn pL pH data / ESC ( fn pL pH data.
    return (3, p[1] + 256 * p[2]) if len(p) >= 3 else None


def _long_block(p: bytes) -> _Size:
    # GS 8 fn p1 p2 p3 p4 data: 32-bit length (large graphics).
    return (5, int.from_bytes(p[1:5], "little")) if len(p) >= 5 else None


def _raster_image(p: bytes) -> _Size:
    # GS v 0 m xL xH yL yH data: x bytes per row, y rows.
    if len(p) < 6:
        return None
    return 6, (p[2] + 256 * p[3]) * (p[4] + 256 * p[5])


def _column_image(p: bytes) -> _Size:
    # ESC * m nL nH data: 8-dot modes take 1 byte a column, 24-dot modes 3.
    if len(p) < 3:
        return None
    return 3, (p[1] + 256 * p[2]) * (1 if p[0] in (0, 1) else 3)


def _downloaded_image(p: bytes) -> _Size:
    # GS * x y data: x * y * 8 bytes.
    return (2, p[0] * p[1] * 8) if len(p) >= 2 else None


def _user_chars(p: bytes) -> _Size:
    # ESC & y c1 c2 then, per character, a width x and x * y bytes. Out of
    # range values (y <= 3, 32 <= c1 <= c2 <= 126, x <= 12) end the command,
    # which bounds what is buffered to a few kilobytes.
    if len(p) < 3:
        return None
    height, first, last = p[0], p[1], p[2]
    if height > 3 or not 32 <= first <= last <= 126:
        return 3, 0
    at = 3
    for _ in range(last - first + 1):
        if len(p) <= at:
            return None
        if p[at] > 12:
            return at, 0
        at += 1 + p[at] * height
    return (at, 0) if len(p) >= at else None


def _realtime_request(p: bytes) -> _Size:
    # DLE DC4 fn ...: fn 1 (pulse m t) and 2 (power off a b) take two more
    # bytes, fn 8 (clear buffers) seven; other functions are treated as bare.
    if not p:
        return None
    n = {1: 3, 2: 3, 8: 8}.get(p[0], 1)
    return (n, 0) if len(p) >= n else None


_ONE, _TWO = _fixed(1), _fixed(2)
_COMMANDS: dict[bytes, Callable[[bytes], _Size]] = {
    **{bytes((ESC, c)): _fixed(0) for c in b"@2LSv<im\x0c"},
    **{bytes((ESC, c)): _ONE for c in b"!EG-atMdJeK3 {VrR=%?UTu"},
    **{bytes((ESC, c)): _TWO for c in b"$\\cB"},
    bytes((ESC, ord("p"))): _fixed(3),
    bytes((ESC, ord("W"))): _fixed(8),
    bytes((ESC, ord("*"))): _column_image,
    bytes((ESC, ord("("))): _function_block,
    bytes((ESC, ord("&"))): _user_chars,
    bytes((ESC, ord("D"))): lambda p: (0, _UNTIL_NUL),
    **{bytes((GS, c)): _fixed(0) for c in b":"},
    **{bytes((GS, c)): _ONE for c in b"!BbhwHf/|arIETZ"},
    **{bytes((GS, c)): _TWO for c in b"LWP$\\"},
    bytes((GS, ord("^"))): _fixed(3),
    bytes((GS, ord("V"))): _gs_cut,
    bytes((GS, ord("k"))): _barcode,
    bytes((GS, ord("("))): _function_block,
    bytes((GS, ord("8"))): _long_block,
    bytes((GS, ord("v"))): _raster_image,
    bytes((GS, ord("*"))): _downloaded_image,
    **{bytes((FS, c)): _fixed(0) for c in b".&"},
    **{bytes((FS, c)): _ONE for c in b"!-W"},
    **{bytes((FS, c)): _TWO for c in b"pS"},
    bytes((DLE, 0x04)): _ONE,
    bytes((DLE, 0x05)): _ONE,
    bytes((DLE, 0x14)): _realtime_request,
}

_TWO_D_BLOCK = bytes((GS, ord("("))), ord("k")  # GS ( k pL pH cn fn ...: a 2D code function
_QR, _QR_STORE, _QR_PRINT = 49, 80, 81  # cn 49: QR; fn 80: store the data (after m); fn 81: print it
_CUTS = {bytes((GS, ord("V"))), bytes((ESC, ord("i"))), bytes((ESC, ord("m")))}
_PULSE_PINS = {0: 2, 48: 2, 1: 5, 49: 5}  # ESC p m: connector pin for m
_CONTROL_BYTE = re.compile(rb"[\x00-\x1f]")


class EscPosParser:
    """Turns one connection's byte stream into printer events, chunk by chunk."""

    def __init__(self) -> None:
        self._pending = b""  # an incomplete command header
        self._skip = 0  # data bytes of the last command still to discard
        self._skip_to_nul = False
        self._codec = _DEFAULT_CODEC
        self._block: bytearray | None = None  # the data of a GS ( k block being read, kept while skipped
        self._qr_data = b""  # what the last QR "store" function held

    def feed(self, data: bytes) -> list[Event]:
        """Parse the next chunk; return the events it completes."""
        buf = self._pending + data
        events: list[Event] = []
        i = 0
        while i < len(buf):
            if self._skip:
                taken = min(self._skip, len(buf) - i)
                if self._block is not None:
                    self._block += buf[i : i + taken]
                self._skip -= taken
                i += taken
                if not self._skip and self._block is not None:
                    self._two_d_code(bytes(self._block), events)
                    self._block = None
            elif self._skip_to_nul:
                end = buf.find(0, i)
                self._skip_to_nul = end < 0
                i = len(buf) if end < 0 else end + 1
            elif buf[i] in (ESC, GS, FS, DLE):
                used = self._command(buf, i, events)
                if used == 0:
                    break
                i += used
            elif buf[i] < 0x20:
                if buf[i] == LF:
                    events.append(Feed(1))
                elif buf[i] == HT:
                    events.append(Text("\t"))
                i += 1  # other control bytes (CR, NUL, BEL...) do nothing
            else:
                control = _CONTROL_BYTE.search(buf, i)
                end = control.start() if control else len(buf)
                events.append(Text(buf[i:end].decode(self._codec, "replace")))
                i = end
        self._pending = buf[i:]
        return events

    def _command(self, buf: bytes, i: int, events: list[Event]) -> int:
        """Consume the command at buf[i]; return bytes used, 0 if incomplete."""
        if i + 1 >= len(buf):
            return 0
        key = buf[i : i + 2]
        size_of = _COMMANDS.get(key)
        if size_of is None:
            # Unknown: drop the prefix and command byte (a stray DLE alone).
            return 1 if buf[i] == DLE else 2
        params = buf[i + 2 :]
        size = size_of(params)
        if size is None:
            return 0
        n, data = size
        if data == _UNTIL_NUL:
            self._skip_to_nul = True
        else:
            self._skip = data
            if data and key == _TWO_D_BLOCK[0] and params[0] == _TWO_D_BLOCK[1]:
                self._block = bytearray()  # at most 65535 bytes, the largest length a header declares
        self._apply(key, params[:n], events)
        return 2 + n

    def _two_d_code(self, block: bytes, events: list[Event]) -> None:
        """A complete GS ( k block (cn fn [m] data): keep a QR's data, print it as a QrCode event."""
        if len(block) < 2 or block[0] != _QR:
            return
        if block[1] == _QR_STORE:
            self._qr_data = block[3:]
        elif block[1] == _QR_PRINT:
            events.append(QrCode(self._qr_data.decode("utf-8", "replace")))

    def _apply(self, key: bytes, params: bytes, events: list[Event]) -> None:
        """Turn a complete command into state changes and events."""
        prefix, command = key[0], key[1]
        if key in _CUTS:
            events.append(Cut())
        elif prefix == ESC and command == ord("@"):
            self._codec = _DEFAULT_CODEC
            events.append(Init())
        elif prefix == ESC and command == ord("t"):
            self._codec = _CODE_PAGES.get(params[0], _DEFAULT_CODEC)
        elif prefix == ESC and command == ord("d"):
            events.append(Feed(params[0]))
        elif prefix == ESC and command == ord("J"):
            events.append(Feed(1))
        elif prefix == ESC and command == ord("p") and params[0] in _PULSE_PINS:
            events.append(DrawerPulse(_PULSE_PINS[params[0]], realtime=False))
        elif prefix == DLE and command == 0x04:
            events.append(StatusRequest(params[0]))
        elif prefix == DLE and command == 0x14 and params[0] == 1 and params[1] in (0, 1):
            # DLE DC4 1 m t: real-time pulse, m = 0 -> pin 2, m = 1 -> pin 5.
            events.append(DrawerPulse(5 if params[1] else 2, realtime=True))
