"""Serial ports for drivers: one place that opens, guards and closes them, turning pyserial's failures into DeviceGone."""

from __future__ import annotations

import termios
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import ClassVar, Self

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


class SerialDevice:
    """A device on a serial port that opens lazily, and again after DeviceGone.

    Subclasses name the device (`_device`, for messages) and do their I/O inside `_io()`, so a failing
    port is closed and reported alike by every driver. Blocking, not thread-safe: one actor owns a device.
    """

    _device: ClassVar[str]

    def __init__(self, port: str, baudrate: int, *, timeout: float | None,
                 write_timeout: float | None = None) -> None:
        """timeout and write_timeout are the port's pyserial settings while open."""
        self.port = port
        self._baudrate = baudrate
        self._port_timeout = timeout
        self._write_timeout = write_timeout
        self._serial: serial.Serial | None = None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the port now, unless open already (else the first I/O does); DeviceGone if it cannot be."""
        if self._serial is not None:
            return
        self._serial = open_serial(self.port, self._baudrate, self._device,
                                   timeout=self._port_timeout, write_timeout=self._write_timeout)
        self._opened()

    def _opened(self) -> None:
        """Run once the port has just been opened: a new connection starts with no state from the last one."""

    def close(self) -> None:
        """Close the port. Never raises: it is how a failed port is abandoned."""
        port, self._serial = self._serial, None
        if port is not None:
            with suppress(OSError):  # a vanished device may fail even this; the port is given up anyway
                port.close()

    @contextmanager
    def _io(self) -> Iterator[serial.Serial]:
        """The port, opened if need be; an OSError inside (SerialException, its write timeout,
        in_waiting's bare OSError) or a termios.error (pyserial sets a vanished port's timeout with
        an unguarded tcsetattr) closes it and becomes DeviceGone, so the next call opens it again."""
        self.open()
        assert self._serial is not None
        try:
            yield self._serial
        except (OSError, termios.error) as exc:
            self.close()
            raise DeviceGone(f"{self._device} port {self.port} is gone: {exc}") from exc

    def _read_available(self, wait: float) -> bytes:
        """What has arrived, waiting up to `wait` for the first byte (b"" if none came)."""
        with self._io() as port:
            port.timeout = wait
            data = port.read(1)
            waiting = port.in_waiting if data else 0
            return data + port.read(waiting) if waiting else data
