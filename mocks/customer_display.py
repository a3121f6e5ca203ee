"""A simulated customer display (a 2x20 pole display on a real pty).

It interprets the Epson ESC/POS display subset documented in
drivers/customer_display.py and keeps what a customer would see:

- ESC @ initialize (blank, cursor home, overwrite mode, PC437, cursor off);
  ESC = n selects the receiving device: while n lacks bit 1 (the display)
  everything but ESC = n is for the printer and ignored; ESC t n selects the
  code table (0 PC437, 2 PC850, 16 WPC1252, 19 PC858; others show as PC437);
  ESC R n is accepted and ignored (always the USA set).
- US MD1 / MD2 / MD3 overwrite / vertical scroll / horizontal scroll mode
  (horizontal scroll is shown as overwrite mode); US $ n m moves the cursor
  to column n, row m (1-based; out of range: ignored, as Epson displays
  do); US C n cursor on/off; US B bottom-left; US LF up; US CR end of line;
  US X n (brightness), US E n (blink), US r n (reverse) are accepted and ignored.
- CLR (0C) blank and home; CAN (18) blank the cursor's line, cursor to its
  start; HOM (0B) home; CR (0D) start of line; LF (0A) down; HT (09) right;
  BS (08) left. Other control bytes, and DEL, are ignored.
- Other bytes are characters in the current code table.

Text past the end of a line, as on Epson displays: in overwrite mode the
cursor wraps to the start of the next line, and from the end of the last
line to home, overwriting what is there; in vertical scroll mode the next
character after the end of the last line scrolls the screen up one line.
LF on the last line goes to the first line in overwrite mode and scrolls
in vertical scroll mode; HT and BS wrap the same way as characters do.
The driver never relies on any of this (it places every line itself).

Unknown commands (ESC or US and a byte not listed) are skipped, prefix and
command byte, as the simulated printers skip theirs; a command cut short
waits for the rest of its bytes, which the next bytes complete, whatever
they are. Nothing received makes it raise, and it never buffers more than
one command (at most four bytes).

`history` holds the screen after each batch of bytes that changed it and
left no command half-received. The driver writes each update in one write,
and for updates this small a pty hands it over in one piece, so in practice
each show() that changes the screen adds one entry.

Unplugging is a power cut, as for displays powered from their USB or serial
port: the screen goes blank and modes return to their power-on state.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from mocks.pty_device import PtySerialDevice

ESC, US = 0x1B, 0x1F
BS, HT, LF, HOM, CLR, CR, CAN, DEL = 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x18, 0x7F

_CODE_TABLES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858"}
_DEFAULT_CODEC = "cp437"

# (prefix, command byte) -> number of parameter bytes that follow.
_PARAMS = {
    (ESC, ord("@")): 0, (ESC, ord("=")): 1, (ESC, ord("t")): 1, (ESC, ord("R")): 1,
    (US, 0x01): 0, (US, 0x02): 0, (US, 0x03): 0, (US, ord("$")): 2, (US, ord("C")): 1,
    (US, ord("B")): 0, (US, LF): 0, (US, CR): 0, (US, ord("X")): 1, (US, ord("E")): 1, (US, ord("r")): 1,
}

OVERWRITE, VERTICAL_SCROLL = 1, 2

Screen = tuple[str, ...]


class CustomerDisplayMock(PtySerialDevice):
    """Simulated customer display at a serial port path; it never sends anything back."""

    def __init__(self, path: str | os.PathLike[str], columns: int = 20, rows: int = 2) -> None:
        super().__init__(path)
        self.columns, self.rows = columns, rows
        self._cond = threading.Condition()  # guards everything below
        self._pending = bytearray()  # a command not yet complete
        self._history: list[Screen] = []
        self._raw = bytearray()
        self._power_on()

    def _power_on(self) -> None:
        self._cells = [[" "] * self.columns for _ in range(self.rows)]
        self._selected = True
        self._init_modes()
        self._shown: Screen = self._screen()  # the screen as of the last history entry

    def _init_modes(self) -> None:
        self._row = self._col = 0
        self._wrap_pending = False  # vertical scroll mode: the cursor is past the end of the last line
        self._mode = OVERWRITE
        self._codec = _DEFAULT_CODEC
        self.cursor_visible = False

    # -- what tests look at ----------------------------------------------------------------

    @property
    def lines(self) -> tuple[str, str]:
        """The top and bottom line as shown now, each `columns` characters wide."""
        with self._cond:
            screen = self._screen()
            return screen[0], screen[1]

    @property
    def screen(self) -> Screen:
        """Every line as shown now (more than two on a bigger display)."""
        with self._cond:
            return self._screen()

    @property
    def history(self) -> list[tuple[str, ...]]:
        """The screen after each update that changed it, oldest first (see the module docstring)."""
        with self._cond:
            return list(self._history)

    @property
    def raw(self) -> bytes:
        """Every byte received, in arrival order."""
        with self._cond:
            return bytes(self._raw)

    def wait_for_text(self, text: str, timeout: float) -> tuple[str, str]:
        """Block until a line shows `text`; the two lines then. TimeoutError otherwise."""
        return self._wait(lambda screen: any(text in line for line in screen), f"text {text!r}", timeout)

    def wait_for_screen(self, top: str, bottom: str, timeout: float) -> tuple[str, str]:
        """Block until the screen shows exactly these lines (padded to `columns`). TimeoutError otherwise."""
        want = (top.ljust(self.columns), bottom.ljust(self.columns))
        return self._wait(lambda screen: screen[:2] == want, f"screen {want!r}", timeout)

    def _wait(self, done: Callable[[Screen], bool], what: str, timeout: float) -> tuple[str, str]:
        with self._cond:
            if not self._cond.wait_for(lambda: done(self._screen()), timeout):
                raise TimeoutError(f"mock display: waited {timeout}s for {what}, shows {self._screen()!r}")
            screen = self._screen()
            return screen[0], screen[1]

    # -- the device --------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> None:
        with self._cond:
            self._raw += data
            for byte in data:
                self._pending.append(byte)
                self._step()
            screen = self._screen()
            if not self._pending and screen != self._shown:
                self._history.append(screen)
                self._shown = screen
            self._cond.notify_all()

    def on_unplugged(self) -> None:
        with self._cond:
            self._pending.clear()
            before = self._screen()
            self._power_on()
            if self._screen() != before:
                self._history.append(self._screen())
            self._cond.notify_all()

    def _screen(self) -> Screen:
        return tuple("".join(row) for row in self._cells)

    def _step(self) -> None:
        """Act on the pending bytes if they make a whole command or character."""
        pending = self._pending
        first = pending[0]
        if first in (ESC, US):
            if len(pending) < 2:
                return
            params = _PARAMS.get((first, pending[1]))
            if params is None:  # unknown: skip prefix and command byte
                pending.clear()
                return
            if len(pending) < 2 + params:
                return
            command = bytes(pending)
            pending.clear()
            if command[:2] == b"\x1b=":
                self._selected = bool(command[2] & 0x02)
            elif self._selected:
                self._command(command)
            return
        pending.clear()
        if not self._selected:
            return
        if first < 0x20 or first == DEL:
            self._control(first)
        else:
            self._put(bytes((first,)).decode(self._codec, errors="replace").replace("\ufffd", "?"))

    def _command(self, command: bytes) -> None:
        prefix, code, params = command[0], command[1], command[2:]
        if prefix == ESC:
            if code == ord("@"):
                self._cells = [[" "] * self.columns for _ in range(self.rows)]
                self._init_modes()
            elif code == ord("t"):
                self._codec = _CODE_TABLES.get(params[0], _DEFAULT_CODEC)
            return  # ESC R n: always the USA set
        if code in (0x01, 0x02, 0x03):
            self._mode = VERTICAL_SCROLL if code == 0x02 else OVERWRITE
        elif code == ord("$"):
            column, row = params
            if 1 <= column <= self.columns and 1 <= row <= self.rows:
                self._move(row - 1, column - 1)
        elif code == ord("C"):
            self.cursor_visible = bool(params[0] & 0x01)
        elif code == ord("B"):
            self._move(self.rows - 1, 0)
        elif code == LF:
            self._move((self._row - 1) % self.rows, self._col)
        elif code == CR:
            self._move(self._row, self.columns - 1)
        # US X, US E, US r: brightness, blinking, reverse; nothing to show

    def _control(self, byte: int) -> None:
        if byte == CLR:
            self._cells = [[" "] * self.columns for _ in range(self.rows)]
            self._move(0, 0)
        elif byte == CAN:
            self._cells[self._row] = [" "] * self.columns
            self._move(self._row, 0)
        elif byte == HOM:
            self._move(0, 0)
        elif byte == CR:
            self._move(self._row, 0)
        elif byte == LF:
            if self._row == self.rows - 1 and self._mode == VERTICAL_SCROLL:
                self._scroll()
                self._move(self._row, self._col)
            else:
                self._move((self._row + 1) % self.rows, self._col)
        elif byte == HT:
            self._advance()
        elif byte == BS:
            position = (self._row * self.columns + self._col - 1) % (self.rows * self.columns)
            self._move(*divmod(position, self.columns))

    def _put(self, char: str) -> None:
        if self._wrap_pending:
            self._scroll()
            self._move(self.rows - 1, 0)
        self._cells[self._row][self._col] = char
        self._advance()

    def _advance(self) -> None:
        """Cursor one cell on, past the end of a line as the module docstring says."""
        if self._col + 1 < self.columns:
            self._col += 1
        elif self._row + 1 < self.rows:
            self._move(self._row + 1, 0)
        elif self._mode == VERTICAL_SCROLL:
            self._wrap_pending = True
        else:
            self._move(0, 0)

    def _move(self, row: int, col: int) -> None:
        self._row, self._col, self._wrap_pending = row, col, False

    def _scroll(self) -> None:
        self._cells = [*self._cells[1:], [" "] * self.columns]
