"""Opening a serial port for a driver: one place that turns pyserial's failures into DeviceGone."""

from __future__ import annotations

import serial

from drivers.errors import DeviceGone


def open_serial(port: str, baudrate: int, device: str, *, timeout: float | None,
                write_timeout: float | None = None) -> serial.Serial:
    """The open port, or DeviceGone saying which device could not be opened and why.

    Drivers always pass a write timeout where they write: without one, pyserial can block forever
    on a port whose buffer is full."""
    try:
        return serial.Serial(port, baudrate, timeout=timeout, write_timeout=write_timeout)
    except (OSError, ValueError) as exc:  # SerialException is an OSError
        raise DeviceGone(f"cannot open {device} port {port}: {exc}") from exc
