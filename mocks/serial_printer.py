"""A simulated ESC/POS receipt printer on a serial port (a real pty).

The same simulated printer as the network one (`SimulatedPrinter`: receipts,
drawer kicks, paper sensors, DLE EOT answers), reached through a serial
line instead of TCP. Unplugging it is a power loss: text not yet cut is
lost, and the next plug starts a fresh parser, so a command cut short by the
unplug cannot swallow the next job.
"""

from __future__ import annotations

import os

from mocks.escpos_parser import EscPosParser
from mocks.escpos_printer import SimulatedPrinter
from mocks.pty_device import PtySerialDevice


class SerialPrinterMock(PtySerialDevice, SimulatedPrinter):
    """Simulated ESC/POS printer at a serial port path; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        PtySerialDevice.__init__(self, path)
        SimulatedPrinter.__init__(self)
        self._parser = EscPosParser()  # only the reader thread uses it while plugged

    def on_bytes(self, data: bytes) -> None:
        reply = self._process(self._parser, data)
        if reply:
            self.write(reply)

    def on_unplugged(self) -> None:
        self._power_loss()
        self._parser = EscPosParser()
