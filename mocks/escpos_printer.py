"""The model of a simulated ESC/POS printer, shared by the network and the serial printer mocks.

It keeps what a person would see come out of the printer (receipts up to each cut, drawer pulses)
and what a host would read back (real-time status bytes), and loses uncut text on power loss.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

from mocks.escpos_parser import Cut, DrawerPulse, EscPosParser, Feed, Init, QrCode, StatusRequest, Text

PaperState = Literal["ok", "near_end", "out"]
QR_MARK = "[QR "
"""A QR code shows in a receipt's text as one line "[QR <payload>]" (see qr_payloads)."""
Fault = Literal["cover_open", "cutter", "unrecoverable", "recoverable"]
_FAULT_BITS: dict[str, tuple[int, int]] = {  # fault: (DLE EOT 2 byte bits, DLE EOT 3 byte bits)
    "cover_open": (0x04, 0), "cutter": (0x40, 0x08), "unrecoverable": (0x40, 0x20), "recoverable": (0x40, 0x40),
}

# DLE EOT status bytes: bits 1 and 4 always on, bits 0 and 7 always off.
_FIXED_BITS = 0x12
_OFFLINE = 0x08  # n=1: printer offline
_PAPER_END_STOP = 0x20  # n=2: printing stopped by paper end
_NEAR_END = 0x0C  # n=4: near-end sensor
_PAPER_END = 0x60  # n=4: paper-end sensor


def qr_payloads(receipt: str) -> list[str]:
    """The payloads of the QR codes printed on `receipt` (one of SimulatedPrinter.receipts), in order."""
    return [line[len(QR_MARK):-1] for line in receipt.splitlines() if line.startswith(QR_MARK) and line.endswith("]")]


class SimulatedPrinter:
    """A simulated ESC/POS printer's state; transports feed it bytes.

    Thread-safe: a transport thread feeds it while tests inspect it.
    Simplifications, each chosen so tests see failures plainly:
    - with the paper out a real printer goes offline and keeps data in its
      buffer until paper is loaded; this one drops it (nothing is printed,
      cut or kicked but real-time commands), so a lost receipt shows;
    - on power loss (unplugged, offline) text not yet cut is lost, so a job
      cut off mid-way never shows up as a receipt.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()  # guards the printer state below
        self._paper: PaperState = "ok"
        self._fault: Fault | None = None
        self._line: list[str] = []  # text not yet printed (no LF yet)
        self._printed: list[str] = []  # lines printed since the last cut
        self._receipts: list[str] = []
        self._drawer_kicks: list[int] = []
        self._raw = bytearray()

    # -- controls ------------------------------------------------------------

    def set_fault(self, fault: Fault | None) -> None:
        """A cover left open or an error (cutter jam...): offline, prints nothing; None clears it."""
        if fault is not None and fault not in _FAULT_BITS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._cond:
            self._fault = fault

    def set_paper(self, state: PaperState) -> None:
        """Set the paper sensors: 'ok', 'near_end' or 'out' (prints nothing)."""
        if state not in ("ok", "near_end", "out"):
            raise ValueError(f"unknown paper state {state!r}")
        with self._cond:
            self._paper = state

    # -- observations --------------------------------------------------------

    @property
    def receipts(self) -> list[str]:
        """Text of each job up to its cut, oldest first."""
        with self._cond:
            return list(self._receipts)

    @property
    def drawer_kicks(self) -> list[int]:
        """Connector pin (2 or 5) of each drawer pulse executed."""
        with self._cond:
            return list(self._drawer_kicks)

    @property
    def raw(self) -> bytes:
        """Every byte received, all connections, in arrival order."""
        with self._cond:
            return bytes(self._raw)

    def wait_for_receipts(self, n: int, timeout: float) -> list[str]:
        """Block until at least n receipts are cut; TimeoutError otherwise."""
        self._wait(lambda: len(self._receipts) >= n, timeout, f"{n} receipts")
        return self.receipts

    def wait_for_drawer_kicks(self, n: int, timeout: float) -> list[int]:
        """Block until at least n drawer pulses ran; TimeoutError otherwise."""
        self._wait(lambda: len(self._drawer_kicks) >= n, timeout, f"{n} drawer kicks")
        return self.drawer_kicks

    def wait_for_raw(self, n: int, timeout: float) -> bytes:
        """Block until n bytes arrived and were acted on; TimeoutError otherwise."""
        self._wait(lambda: len(self._raw) >= n, timeout, f"{n} bytes")
        return self.raw

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(ready, timeout):
                raise TimeoutError(
                    f"mock printer: waited {timeout}s for {what}; have "
                    f"{len(self._receipts)} receipts, {len(self._drawer_kicks)} drawer kicks, "
                    f"{len(self._raw)} bytes"
                )

    # -- for transports --------------------------------------------------------

    def _process(self, parser: EscPosParser, data: bytes) -> bytes:
        """Act on bytes from one stream (parsed by that stream's parser); return status replies."""
        events = parser.feed(data)
        reply = bytearray()
        with self._cond:
            self._raw += data
            running = self._paper != "out" and self._fault is None  # both take a printer offline
            for event in events:
                if isinstance(event, StatusRequest):
                    reply += self._status_byte(event.n)
                elif isinstance(event, DrawerPulse):
                    if running or event.realtime:
                        self._drawer_kicks.append(event.pin)
                elif not running:
                    continue
                elif isinstance(event, Text):
                    self._line.append(event.text)
                elif isinstance(event, Feed):
                    self._feed(event.lines)
                elif isinstance(event, Init):
                    self._line.clear()
                elif isinstance(event, Cut):
                    self._cut()
                elif isinstance(event, QrCode):
                    self._feed(0)
                    self._printed.append(f"{QR_MARK}{event.payload}]")
            self._cond.notify_all()
        return bytes(reply)

    def _power_loss(self) -> None:
        """The printer lost power: text received but not yet cut is gone."""
        with self._cond:
            self._line.clear()
            self._printed.clear()

    def _feed(self, lines: int) -> None:
        if self._line:
            self._printed.append("".join(self._line))
            self._line.clear()
            lines -= 1
        self._printed.extend([""] * max(lines, 0))

    def _cut(self) -> None:
        self._feed(0)
        while self._printed and not self._printed[-1].strip():
            self._printed.pop()  # the feed to the cutter, not content
        self._receipts.append("\n".join(self._printed))
        self._printed.clear()

    def _status_byte(self, n: int) -> bytes:
        """DLE EOT n reply; n outside 1..4 is ignored, as printers do."""
        out = self._paper == "out"
        cause, error = _FAULT_BITS[self._fault] if self._fault else (0, 0)
        if n == 1:
            return bytes([_FIXED_BITS | (_OFFLINE if out or self._fault else 0)])
        if n == 2:
            return bytes([_FIXED_BITS | (_PAPER_END_STOP if out else 0) | cause])
        if n == 3:
            return bytes([_FIXED_BITS | error])
        if n == 4:
            sensors = {"ok": 0, "near_end": _NEAR_END, "out": _NEAR_END | _PAPER_END}
            return bytes([_FIXED_BITS | sensors[self._paper]])
        return b""
