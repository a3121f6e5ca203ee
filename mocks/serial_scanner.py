"""A simulated serial barcode scanner (a real pty).

Scanners in "serial/RS-232 mode" (or USB CDC-ACM) send each barcode as ASCII
followed by a configured suffix, usually CR. Tests also need to send what
real scanners send by accident: noise when the cable is plugged, a
truncated code, garbage from a wrong baud rate.
"""

from __future__ import annotations

import os

from mocks.pty_device import PtySerialDevice


class SerialScannerMock(PtySerialDevice):
    """Simulated scanner at a serial port path; it never reads what the host sends."""

    def __init__(self, path: str | os.PathLike[str], suffix: bytes = b"\r") -> None:
        super().__init__(path)
        self.suffix = suffix

    def scan(self, barcode: str) -> None:
        """Send a barcode as a scanner would: ASCII, then the suffix."""
        self.write(barcode.encode("ascii") + self.suffix)

    def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes (malformed or partial codes)."""
        self.write(data)
