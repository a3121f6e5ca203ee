"""What a scanner actor needs from any barcode scanner driver (serial, HID, or one added later)."""

from __future__ import annotations

from typing import Protocol


class BarcodeScanner(Protocol):
    def open(self) -> None:
        """Connect now (no-op if connected); DeviceGone if the scanner is not there."""

    def read_barcodes(self, timeout: float) -> list[str]:
        """Barcodes completed within `timeout` seconds, in scan order; DeviceGone if the scanner vanished."""
        ...

    def close(self) -> None:
        """Let go of the scanner; never raises."""
