"""A simulated standalone serial cash drawer (a real pty).

It speaks the protocol documented in drivers/cash_drawer.py: ESC p opens
it, DLE EOT 1 is answered with a status byte whose bit 2 is set while it is
open; everything else is ignored. The byte stream goes through the printer
simulator's ESC/POS parser, so split, truncated or malformed commands are
handled exactly as the simulated printers handle them. The drawer stays
open until the test shuts it (`close_drawer`), as a cashier would.
"""

from __future__ import annotations

import os
import threading

from mocks.escpos_parser import DrawerPulse, EscPosParser, StatusRequest
from mocks.pty_device import PtySerialDevice

_FIXED_BITS = 0x12  # bits 1 and 4 set, 0 and 7 clear, as in a DLE EOT answer
_OPEN = 0x04


class SerialDrawerMock(PtySerialDevice):
    """Simulated cash drawer at a serial port path; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._cond = threading.Condition()  # guards the drawer state below
        self._open = False
        self._kicks: list[int] = []
        self._raw = bytearray()
        self._parser = EscPosParser()  # only the reader thread uses it while plugged

    @property
    def is_open(self) -> bool:
        """Whether the drawer is open."""
        with self._cond:
            return self._open

    @property
    def kicks(self) -> list[int]:
        """Connector pin (2 or 5) of each pulse received, oldest first."""
        with self._cond:
            return list(self._kicks)

    @property
    def raw(self) -> bytes:
        """Every byte received, in arrival order."""
        with self._cond:
            return bytes(self._raw)

    def close_drawer(self) -> None:
        """The cashier pushes the drawer shut."""
        with self._cond:
            self._open = False

    def wait_for_kicks(self, n: int, timeout: float) -> list[int]:
        """Block until at least n pulses were received; TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._kicks) >= n, timeout):
                raise TimeoutError(f"mock drawer: waited {timeout}s for {n} kicks, have {len(self._kicks)}")
            return list(self._kicks)

    def on_bytes(self, data: bytes) -> None:
        reply = bytearray()
        events = self._parser.feed(data)
        with self._cond:
            self._raw += data
            for event in events:
                if isinstance(event, DrawerPulse):
                    self._kicks.append(event.pin)
                    self._open = True
                elif isinstance(event, StatusRequest) and event.n == 1:
                    reply.append(_FIXED_BITS | (_OPEN if self._open else 0))
            self._cond.notify_all()
        if reply:
            self.write(bytes(reply))

    def on_unplugged(self) -> None:
        self._parser = EscPosParser()  # a command cut short by the unplug is void
