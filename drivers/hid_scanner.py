"""USB HID barcode scanners: report decoders and the driver.

Two kinds of scanner are supported, as configured per device:

* ``"pos"`` - HID POS mode (usage page 0x8C "Bar Code Scanner", usage 0x02; the barcode arrives in a
  "Scanned Data Report", usage 0x12). The POS usage tables name the fields (decoded data 0xFE,
  symbology identifiers, "decoded data continued") but the byte layout is set by each device's report
  descriptor. We implement the common 64-byte layout (Honeywell-style HID POS; Access-IS devices put
  the AIM identifier first instead, at bytes 2-4 - a different layout to add if we ever meet one)::

      byte  0       report id, 0x02 (scanned data report)
      byte  1       n = number of decoded-data bytes in this report, 0..56
      bytes 2..57   decoded data, n bytes used, rest zero padding
      bytes 58..60  AIM symbology identifier, e.g. b"]E0" (ignored: the till wants the data)
      byte  61      vendor symbology / code id (ignored)
      byte  62      reserved
      byte  63      bit 0 = "decoded data continued": the barcode goes on in the next report

  A barcode longer than 56 bytes spans several reports; `PosReportAssembler` joins them. Reports
  shorter than 64 bytes, with another report id, or with n > 56 are malformed and discarded (a
  partly assembled barcode is dropped with them: a barcode with a missing piece must never reach a
  till). Data bytes are UTF-8 when they decode as such, else Latin-1; a trailing CR/LF suffix (a
  scanner configured with a suffix) is stripped.

* ``"keyboard"`` - keyboard wedge: the scanner is a boot-protocol keyboard (usage page 0x01, usage
  0x06) and "types" the barcode. Each report is 8 bytes: modifiers (bit 0/4 ctrl, 1/5 shift, 2/6 alt,
  3/7 GUI, left/right), a reserved byte, then up to 6 pressed keycodes (usage page 0x07). A 9-byte
  report is taken to start with a report id. Keys count on the report in which they appear (a key
  still held in the next report is the same press; a release is a report without it, usually all
  zero), so "11" arrives as press, release, press, release. Enter (0x28, keypad 0x58) ends a barcode;
  Tab (0x2B) does too if configured, else it is ignored. Keys with ctrl/alt/GUI held, unknown keys and
  phantom (ErrorRollOver 0x01..0x03) reports are ignored. US layout.

Barcodes over `MAX_BARCODE_LENGTH` characters are discarded. Decoders never raise on device data: what
does not fit is dropped with a (rate-limited) log line and counted in ``discarded``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from drivers.barcode_scanner import MAX_BARCODE_LENGTH
from drivers.errors import DeviceGone, DeviceProtocolError
from drivers.hid_backend import HidBackend, HidHandle
from drivers.registry import DriverSpec, Target, register

log = logging.getLogger(__name__)

ScannerMode = Literal["pos", "keyboard"]


# HID POS scanned data report layout (see the module docstring).
POS_REPORT_ID = 0x02
POS_REPORT_SIZE = 64
POS_LENGTH_OFFSET = 1
POS_DATA_OFFSET = 2
POS_DATA_MAX = 56
POS_AIM_OFFSET = 58  # 3 bytes
POS_CODE_ID_OFFSET = 61
POS_FLAGS_OFFSET = 63
POS_FLAG_CONTINUED = 0x01

# Keyboard boot report.
KEYBOARD_REPORT_SIZE = 8
MOD_CTRL = 0x01 | 0x10
MOD_SHIFT = 0x02 | 0x20
MOD_ALT = 0x04 | 0x40
MOD_GUI = 0x08 | 0x80
KEY_ENTER = 0x28
KEY_TAB = 0x2B
KEYPAD_ENTER = 0x58
_KEY_ERRORS = frozenset({0x01, 0x02, 0x03})  # ErrorRollOver, POSTFail, ErrorUndefined

# Usage page 0x07 keycode -> (unshifted, shifted) character, US layout.
KEY_CHARS: dict[int, tuple[str, str]] = {}
for _i, _c in enumerate("abcdefghijklmnopqrstuvwxyz"):
    KEY_CHARS[0x04 + _i] = (_c, _c.upper())
for _i, (_c, _s) in enumerate(zip("1234567890", "!@#$%^&*()", strict=False)):
    KEY_CHARS[0x1E + _i] = (_c, _s)
KEY_CHARS.update({
    0x2C: (" ", " "), 0x2D: ("-", "_"), 0x2E: ("=", "+"), 0x2F: ("[", "{"), 0x30: ("]", "}"),
    0x31: ("\\", "|"), 0x33: (";", ":"), 0x34: ("'", '"'), 0x35: ("`", "~"), 0x36: (",", "<"),
    0x37: (".", ">"), 0x38: ("/", "?"),
    # keypad (num lock assumed on)
    0x54: ("/", "/"), 0x55: ("*", "*"), 0x56: ("-", "-"), 0x57: ("+", "+"), 0x63: (".", "."),
})
for _i, _c in enumerate("1234567890"):
    KEY_CHARS[0x59 + _i] = (_c, _c)
del _i, _c, _s


class _DiscardLog:
    """Logs discarded input: the first few lines, then at most one line per interval with a count."""

    def __init__(self, burst: int = 10, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._logged = 0
        self._suppressed = 0
        self._last = -math.inf

    def __call__(self, what: str, reason: str) -> None:
        now = self._clock()
        if self._logged < self._burst or now - self._last >= self._interval:
            extra = f" ({self._suppressed} more discarded since the last line)" if self._suppressed else ""
            log.warning("scanner: discarded %s: %s%s", what, reason, extra)
            self._logged += 1
            self._last = now
            self._suppressed = 0
        else:
            self._suppressed += 1


def _barcode_text(data: bytes) -> str:
    data = data.rstrip(b"\r\n")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- HID POS ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PosReport:
    data: bytes
    aim_id: bytes
    continued: bool


def parse_pos_report(report: bytes) -> PosReport:
    """Parse one scanned data report; raises DeviceProtocolError if it does not fit the layout."""
    report = bytes(report)
    if len(report) < POS_REPORT_SIZE:
        raise DeviceProtocolError(f"truncated POS report: {len(report)} bytes, expected {POS_REPORT_SIZE}")
    if report[0] != POS_REPORT_ID:
        raise DeviceProtocolError(f"not a scanned data report: report id {report[0]:#04x}")
    length = report[POS_LENGTH_OFFSET]
    if length > POS_DATA_MAX:
        raise DeviceProtocolError(f"POS report data length {length} exceeds {POS_DATA_MAX}")
    return PosReport(
        data=report[POS_DATA_OFFSET:POS_DATA_OFFSET + length],
        aim_id=report[POS_AIM_OFFSET:POS_AIM_OFFSET + 3],
        continued=bool(report[POS_FLAGS_OFFSET] & POS_FLAG_CONTINUED),
    )


def decode_pos_report(report: bytes) -> str | None:
    """The barcode carried by one complete HID POS report, or None.

    None for a malformed or truncated report, an empty one, an over-long barcode, or a report that is
    only the first part of a longer barcode (continuation flag set: use `PosReportAssembler`)."""
    try:
        parsed = parse_pos_report(report)
    except DeviceProtocolError as exc:
        log.debug("decode_pos_report: %s", exc)
        return None
    if parsed.continued:
        return None
    text = _barcode_text(parsed.data)
    if not text or len(text) > MAX_BARCODE_LENGTH:
        return None
    return text


class PosReportAssembler:
    """Joins HID POS reports into barcodes, following the continuation flag. Not thread-safe."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._overflow = False
        self.discarded = 0
        self._discard_log = _DiscardLog()

    @property
    def pending(self) -> bool:
        """Whether part of a barcode has arrived and the rest has not."""
        return bool(self._parts) or self._overflow

    def reset(self) -> None:
        self._parts.clear()
        self._size = 0
        self._overflow = False

    def _discard(self, what: str, reason: str) -> None:
        self.discarded += 1
        self._discard_log(what, reason)

    def feed(self, report: bytes) -> str | None:
        """Feed one report; returns the barcode it completes, else None. Never raises on bad data."""
        try:
            parsed = parse_pos_report(report)
        except DeviceProtocolError as exc:
            partial = " (and the partial barcode before it)" if self.pending else ""
            self.reset()
            self._discard(f"POS report{partial}", str(exc))
            return None
        if not self._overflow:
            self._parts.append(parsed.data)
            self._size += len(parsed.data)
            if self._size > MAX_BARCODE_LENGTH * 4:  # no UTF-8 text this long fits in MAX_BARCODE_LENGTH chars
                self._overflow = True
                self._parts.clear()
        if parsed.continued:
            return None
        overflow, data = self._overflow, b"".join(self._parts)
        self.reset()
        if overflow:
            self._discard("POS barcode", f"longer than {MAX_BARCODE_LENGTH} characters")
            return None
        text = _barcode_text(data)
        if not text:
            return None
        if len(text) > MAX_BARCODE_LENGTH:
            self._discard("POS barcode", f"{len(text)} characters, more than {MAX_BARCODE_LENGTH}")
            return None
        return text


# --- keyboard wedge ---------------------------------------------------------------------------------


class KeyboardWedgeDecoder:
    """Turns keyboard boot reports into barcodes (see the module docstring). Not thread-safe."""

    def __init__(self, tab_ends_barcode: bool = False) -> None:
        self.tab_ends_barcode = tab_ends_barcode
        self._pressed: frozenset[int] = frozenset()
        self._chars: list[str] = []
        self._overflow = False
        self.discarded = 0
        self._discard_log = _DiscardLog()

    @property
    def pending(self) -> bool:
        """Whether characters of an unfinished barcode are buffered."""
        return bool(self._chars) or self._overflow

    def reset(self) -> None:
        """Forget the unfinished barcode and which keys are held."""
        self._pressed = frozenset()
        self._chars.clear()
        self._overflow = False

    def _discard(self, what: str, reason: str) -> None:
        self.discarded += 1
        self._discard_log(what, reason)

    def feed(self, report: bytes) -> list[str]:
        """Feed one report; returns the barcodes it completes (usually none or one)."""
        report = bytes(report)
        if len(report) == KEYBOARD_REPORT_SIZE + 1:
            report = report[1:]  # numbered reports: report id first
        if len(report) != KEYBOARD_REPORT_SIZE:
            self._discard("keyboard report", f"{len(report)} bytes, expected {KEYBOARD_REPORT_SIZE}")
            return []
        modifiers, keys = report[0], report[2:]
        if any(key in _KEY_ERRORS for key in keys):
            log.debug("scanner: keyboard rollover/error report ignored: %s", report.hex())
            return []  # phantom state: says nothing about which keys are down
        current = [key for key in keys if key]
        new = [key for key in dict.fromkeys(current) if key not in self._pressed]
        self._pressed = frozenset(current)
        done: list[str] = []
        for key in new:
            if key in (KEY_ENTER, KEYPAD_ENTER) or (key == KEY_TAB and self.tab_ends_barcode):
                barcode = self._finish()
                if barcode is not None:
                    done.append(barcode)
            elif modifiers & (MOD_CTRL | MOD_ALT | MOD_GUI):
                log.debug("scanner: key %#04x with modifiers %#04x ignored", key, modifiers)
            elif key in KEY_CHARS:
                self._type(KEY_CHARS[key][1 if modifiers & MOD_SHIFT else 0])
            else:
                log.debug("scanner: unknown keycode %#04x ignored", key)
        return done

    def _type(self, char: str) -> None:
        if self._overflow:
            return
        self._chars.append(char)
        if len(self._chars) > MAX_BARCODE_LENGTH:
            self._overflow = True
            self._chars.clear()

    def _finish(self) -> str | None:
        overflow, text = self._overflow, "".join(self._chars)
        self._chars.clear()
        self._overflow = False
        if overflow:
            self._discard("keyboard barcode", f"longer than {MAX_BARCODE_LENGTH} characters")
            return None
        return text or None


# --- the driver -------------------------------------------------------------------------------------


class HidScanner:
    """A USB HID barcode scanner on a HidBackend.

    Blocking calls, for one owner (the scanner's device actor). `read_barcodes` raises DeviceGone when
    the device vanished (the handle is then closed: call `open()` again once the device is back);
    nothing the device sends makes it raise anything else.
    """

    READ_SIZE = 64  # largest report we expect; hidapi returns the actual report length
    MAX_DRAIN = 1024  # reports taken without waiting once the timeout is over or a barcode is in

    def __init__(self, backend: HidBackend, path: bytes, mode: ScannerMode, *, tab_ends_barcode: bool = False,
                 stale_after: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in ("pos", "keyboard"):
            raise ValueError(f"unknown scanner mode {mode!r}: expected 'pos' or 'keyboard'")
        self.backend = backend
        self.path = bytes(path)
        self.mode: ScannerMode = mode
        self.stale_after = stale_after  # a partial barcode idle this long is dropped
        self._clock = clock
        self._handle: HidHandle | None = None
        self._pos = PosReportAssembler()
        self._keyboard = KeyboardWedgeDecoder(tab_ends_barcode=tab_ends_barcode)
        self._last_report = -math.inf

    @property
    def is_open(self) -> bool:
        return self._handle is not None

    @property
    def discarded(self) -> int:
        """How many reports or barcodes were dropped as malformed or too long."""
        return self._pos.discarded + self._keyboard.discarded

    def open(self) -> None:
        """Open the device (no-op if open); raises DeviceGone if it is not there."""
        if self._handle is not None:
            return
        self._reset_decoders()
        self._handle = self.backend.open(self.path)

    def close(self) -> None:
        handle, self._handle = self._handle, None
        self._reset_decoders()
        if handle is not None:
            try:
                handle.close()
            except Exception as exc:
                log.debug("scanner %r: close: %s", self.path, exc)

    def __enter__(self) -> HidScanner:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _reset_decoders(self) -> None:
        self._pos.reset()
        self._keyboard.reset()

    def read_barcodes(self, timeout: float) -> list[str]:
        """Barcodes completed within `timeout` seconds, in scan order.

        Returns as soon as at least one barcode is complete and no further report is already queued,
        else after `timeout` with [] (`timeout=0` takes only what is already queued). A barcode still
        arriving stays buffered for the next call.
        Raises DeviceGone if the device vanished (or the scanner is not open)."""
        handle = self._handle
        if handle is None:
            raise DeviceGone(f"scanner {self.path!r} is not open")
        deadline = self._clock() + max(0.0, timeout)
        barcodes: list[str] = []
        drained = 0
        while True:
            remaining = deadline - self._clock()
            waiting = not barcodes and remaining > 0
            try:
                report = handle.read(self.READ_SIZE, max(1, math.ceil(remaining * 1000)) if waiting else 0)
            except DeviceGone:
                self.close()
                raise
            if not report:
                if waiting:
                    continue  # this wait ended: look at the clock again
                break  # nothing more already queued
            barcodes.extend(self._decode(report))
            if not waiting:
                drained += 1
                if drained >= self.MAX_DRAIN:  # a device that never stops talking must not hold us
                    break
        return barcodes

    def _decode(self, report: bytes) -> list[str]:
        now = self._clock()
        decoder = self._pos if self.mode == "pos" else self._keyboard
        if decoder.pending and now - self._last_report > self.stale_after:
            decoder.reset()
            decoder.discarded += 1
            log.warning("scanner %r: partial barcode dropped after %.1f s without data", self.path,
                        now - self._last_report)
        self._last_report = now
        try:
            if self.mode == "pos":
                barcode = self._pos.feed(report)
                return [barcode] if barcode is not None else []
            return self._keyboard.feed(report)
        except Exception:
            log.exception("scanner %r: report %s could not be decoded; discarded", self.path, bytes(report).hex())
            self._reset_decoders()
            return []


def _opener(mode: ScannerMode) -> Callable[[Target], HidScanner]:
    def open_scanner(target: Target) -> HidScanner:
        assert target.seen is not None and target.seen.hid_path is not None  # the manager found it on the HID bus
        return HidScanner(target.hid, target.seen.hid_path, mode)
    return open_scanner


register(DriverSpec("hid-pos", kind="scanner", bus="hid", needs=("vendor_id", "product_id"), open=_opener("pos")))
register(DriverSpec("hid-keyboard", kind="scanner", bus="hid", needs=("vendor_id", "product_id"),
                    open=_opener("keyboard")))
