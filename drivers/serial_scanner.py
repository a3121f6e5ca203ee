"""Barcode scanner on a serial port (RS-232, or USB in CDC-ACM/serial mode).

The scanner sends each barcode as ASCII followed by a suffix, usually CR;
CR, LF and CRLF are all accepted as terminators whatever the configured
suffix, because scanners are often reconfigured in the field. A barcode is
only delivered once its terminator has arrived.

What is not a barcode is dropped whole, with a log line, never delivered in
part: a line holding a byte outside printable ASCII (noise on plug-in, a
wrong baud rate) or longer than 128 characters. Dropping the whole line,
rather than just the odd bytes, is deliberate: a barcode with a byte lost
could be a different, valid code, and ringing up the wrong product is worse
than asking the cashier to scan again. GS (0x1D) is allowed: GS1 barcodes
use it as the field separator.

Blocking calls, not thread-safe: one device actor owns a scanner (from
trio, use trio.to_thread).
"""

from __future__ import annotations

import logging
import time

from drivers.barcode_scanner import MAX_BARCODE_LENGTH
from drivers.registry import DriverSpec, Target, register
from drivers.serial_port import SerialDevice

log = logging.getLogger(__name__)

_TERMINATORS = b"\r\n"
_GS = 0x1D


class SerialScanner(SerialDevice):
    """A serial barcode scanner; opens lazily and again after DeviceGone."""

    _device = "scanner"

    def __init__(self, port: str, baudrate: int = 9600, suffix: bytes = b"\r") -> None:
        """port is the device path (e.g. a stable /dev/serial/by-id link);
        every byte of suffix ends a barcode, as CR and LF always do."""
        if not suffix:
            raise ValueError("suffix must not be empty")
        super().__init__(port, baudrate, timeout=0)
        self._terminators = frozenset(_TERMINATORS + suffix)
        self._line = bytearray()  # the barcode being received
        self._discarding = False  # the current line is over-long: drop it up to its terminator

    def _opened(self) -> None:
        """A partial barcode from the last connection is forgotten."""
        self._line.clear()
        self._discarding = False

    def read_barcodes(self, timeout: float) -> list[str]:
        """Wait up to timeout for barcodes; return every complete one received.

        Returns as soon as at least one barcode is complete (with any others
        that arrived with it), or [] when the time is up. DeviceGone when the
        port vanishes; the next call tries to open it again.
        """
        self.open()
        deadline = time.monotonic() + timeout
        barcodes: list[str] = []
        while True:
            barcodes += self._parse(self._read_available(max(deadline - time.monotonic(), 0.0)))
            if barcodes or time.monotonic() >= deadline:
                return barcodes

    def _parse(self, data: bytes) -> list[str]:
        barcodes: list[str] = []
        for byte in data:
            if byte in self._terminators:
                barcode = self._end_line()
                if barcode:
                    barcodes.append(barcode)
            elif not self._discarding:
                self._line.append(byte)
                if len(self._line) > MAX_BARCODE_LENGTH:
                    log.warning("scanner %s: discarding over-long input (> %d bytes)", self.port, MAX_BARCODE_LENGTH)
                    self._line.clear()
                    self._discarding = True
        return barcodes

    def _end_line(self) -> str | None:
        """The finished line as a barcode, or None if it is empty or junk."""
        line = bytes(self._line)
        self._line.clear()
        if self._discarding:
            self._discarding = False
            return None
        if any(not (0x20 <= byte < 0x7F or byte == _GS) for byte in line):
            # never the bytes: a card reader on a serial port sends a card's track data this way
            log.warning("scanner %s: discarding %d bytes that are not a barcode", self.port, len(line))
            return None
        return line.decode("ascii") or None


def _open_serial_scanner(target: Target) -> SerialScanner:
    assert target.rule.path is not None  # the spec needs it: the config loader refused a rule without
    return SerialScanner(target.rule.path, target.rule.baudrate)


register(DriverSpec("serial-scanner", kind="scanner", bus="serial", needs=("path",), open=_open_serial_scanner))
