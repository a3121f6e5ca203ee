"""What a scanner actor needs from any barcode scanner driver (serial, HID, or one added later)."""

from __future__ import annotations

from typing import Protocol

MAX_BARCODE_LENGTH = 128
"""Longest barcode a scanner driver hands on; longer input is discarded whole (novapos.validators holds the
same bound for the API and the config, and a test keeps them equal: drivers import nothing of novapos)."""


class BarcodeScanner(Protocol):
    def open(self) -> None:
        """Connect now (no-op if connected); DeviceGone if the scanner is not there."""

    def read_barcodes(self, timeout: float) -> list[str]:
        """Barcodes completed within `timeout` seconds, in scan order; DeviceGone if the scanner vanished."""
        ...

    def close(self) -> None:
        """Let go of the scanner; never raises."""
