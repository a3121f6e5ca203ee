"""Cash drawers: a standalone one on a serial port, or one kicked through the receipt printer.

Most drawers hang off the receipt printer's drawer connector and open when
the printer gets ESC p (`EscPosPrinter.kick_drawer`). Standalone serial drawer
interfaces speak the same two commands, and that is the protocol
`SerialCashDrawer` uses (8N1, no flow control, 9600 baud by default):

- open:   ESC p m t1 t2 (1B 70 m t1 t2) -- m = 0 pulses connector pin 2,
  m = 1 pin 5; t1, t2 = pulse on and off time in 2 ms units (50 = 100 ms).
  No reply.
- status: DLE EOT 1 (10 04 01) -- the drawer replies one byte shaped like a
  printer's DLE EOT 1 answer: bits 1 and 4 set, bits 0 and 7 clear, and
  bit 2 (0x04) set while the drawer is open (0x16 open, 0x12 closed). Other
  bits are reserved, to be ignored.

Anything else sent to the drawer is ignored by it.

Blocking calls, not thread-safe: one device actor owns a drawer (from trio,
use trio.to_thread).
"""

from __future__ import annotations

from typing import Protocol

from escpos.constants import CD_KICK_2, CD_KICK_5, RT_STATUS_ONLINE

from drivers.errors import DeviceGone, DeviceProtocolError
from drivers.registry import DriverSpec, Target, register
from drivers.serial_port import SerialDevice

_KICK = {2: CD_KICK_2, 5: CD_KICK_5}  # ESC p 0|1 50 50: 100 ms on, 100 ms off
_STATUS_FIXED_MASK = 0x93  # bits that are fixed in every status byte...
_STATUS_FIXED_BITS = 0x12  # ...and their values
_DRAWER_OPEN = 0x04


class CashDrawer(Protocol):
    """What a drawer actor needs from a drawer driver with a port of its own."""

    def kick(self, pin: int | None = None) -> None:
        """Pulse the drawer open; DeviceGone if it is unreachable."""

    def is_open(self) -> bool:
        """The drawer's sensor; DeviceGone if unreachable, DeviceProtocolError for a garbled answer."""

    def close(self) -> None:
        """Let go of the port; never raises."""


class SerialCashDrawer(SerialDevice):
    """A standalone cash drawer on a serial port; opens lazily and again after DeviceGone."""

    _device = "cash drawer"

    def __init__(self, port: str, baudrate: int = 9600, timeout: float = 0.5, pin: int = 2) -> None:
        """timeout bounds each write and the wait for a status reply; pin is
        the solenoid's connector pin (2 or 5) used when kick() names none."""
        _check_pin(pin)
        super().__init__(port, baudrate, timeout=timeout, write_timeout=timeout)
        self._pin = pin

    def kick(self, pin: int | None = None) -> None:
        """Pulse the drawer open (ESC p) on `pin`, or the configured pin."""
        pin = self._pin if pin is None else pin
        _check_pin(pin)
        with self._io() as port:
            port.write(_KICK[pin])

    def is_open(self) -> bool:
        """Ask the drawer (DLE EOT 1). DeviceGone if the port is gone or the
        drawer does not answer within the timeout; DeviceProtocolError if
        its answer is not a status byte."""
        with self._io() as port:
            port.read(port.in_waiting)  # a late reply to an earlier question is not this answer
            port.write(RT_STATUS_ONLINE)
            reply = port.read(1)
        if not reply:
            self.close()  # a reply arriving later must not answer the next question
            raise DeviceGone(f"cash drawer on {self.port} does not answer")
        if reply[0] & _STATUS_FIXED_MASK != _STATUS_FIXED_BITS:
            raise DeviceProtocolError(f"cash drawer on {self.port} sent {reply.hex()}, not a status byte")
        return bool(reply[0] & _DRAWER_OPEN)


def _check_pin(pin: int) -> None:
    if pin not in _KICK:
        raise ValueError(f"drawer pin must be 2 or 5, not {pin!r}")


def _open_serial_drawer(target: Target) -> SerialCashDrawer:
    assert target.rule.path is not None  # the spec needs it: the config loader refused a rule without
    return SerialCashDrawer(target.rule.path, target.rule.baudrate, pin=target.rule.pin)


register(DriverSpec("serial-drawer", kind="drawer", bus="serial", needs=("path",), open=_open_serial_drawer))
register(DriverSpec("printer-drawer", kind="drawer", bus="none", needs=("printer",)))  # pulsed by its printer
