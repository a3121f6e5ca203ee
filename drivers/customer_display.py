"""Customer display (pole display, 2x20 VFD/LCD) on a serial port, Epson ESC/POS display commands.

Epson's DM-D displays and the many "ESC/POS" and CD5220-compatible clones
understand the same core commands (8N1, no flow control, 9600 baud by
default). This driver uses only this small subset:

- ESC @       (1B 40)        initialize: clear the screen, cursor home, default modes
- ESC = n     (1B 3D n)      select the device the data is for; n = 2: the display
                             (needed when the display sits on the printer's line, harmless alone)
- ESC t n     (1B 74 n)      character code table; n = 0: PC437, the power-on default
- ESC R n     (1B 52 n)      international character set; n = 0: USA, so 0x20-0x7E are plain ASCII
- US MD1      (1F 01)        overwrite mode (MD2 = vertical scroll, MD3 = horizontal scroll)
- US $ n m    (1F 24 n m)    cursor to column n, row m (both 1-based)
- US C n      (1F 43 n)      cursor display off (0) / on (1)
- CLR         (0C)           clear the screen, cursor home

The display sends nothing back: there is no status to read, and a display
that is switched off but whose port is still there cannot be detected.

What happens to text written past the end of a line differs between models
and modes (in Epson's overwrite mode the cursor wraps to the start of the
next line, and from the last line to home; in vertical scroll mode the
screen scrolls up). The driver never relies on either: every show() sends
the whole screen, each line placed with US $ and exactly `columns` wide,
after putting the display back into overwrite mode. A glitch (noise, a
command cut short by a failed write, another program writing to the port)
therefore lasts only until the next show(): it cannot leave the screen
scrolled, shifted or mixed with older text. Each update starts with three
NULs, which the display ignores: they complete any command that a glitch
left half-sent (the longest in the subset, US $ n m, lacks at most three
bytes), so the commands after them are read as commands.

Text is sent in code page PC437 (selected explicitly with ESC t 0, and the
default of nearly every display anyway), which has the accented letters of
most Western European languages (é, è, ü, ö, ñ, ç, ß, ...). Text goes through
drivers.device_text, as the printer's does: a character PC437 lacks is
transliterated ('€' becomes "EUR", 'Ø' becomes 'O'), line breaks become spaces,
other control characters a visible '?', so nothing in a product's name can be
a command to the display. Lines are cut to `columns` after transliterating, so
"1,50 €" takes 8 cells.

Blocking calls, not thread-safe: one device actor owns a display (from trio,
use trio.to_thread).
"""

from __future__ import annotations

from drivers.device_text import encode
from drivers.registry import DriverSpec, Target, register
from drivers.serial_port import SerialDevice

ESC, US = b"\x1b", b"\x1f"
CLR = b"\x0c"
INITIALIZE = ESC + b"@"
SELECT_DISPLAY = ESC + b"=\x02"
CODE_TABLE_PC437 = ESC + b"t\x00"
INTERNATIONAL_USA = ESC + b"R\x00"
OVERWRITE_MODE = US + b"\x01"
CURSOR_OFF = US + b"C\x00"
SYNC = b"\x00\x00\x00"  # completes a half-sent command; ignored otherwise

CODEC = "cp437"
MAX_COLUMNS = 40
MAX_ROWS = 4


def encode_line(text: str, columns: int) -> bytes:
    """One display line: text made safe for PC437 (drivers.device_text), cut or padded to exactly `columns` bytes."""
    return encode(text, CODEC)[:columns].ljust(columns)


class CustomerDisplay(SerialDevice):
    """A customer display on a serial port; opens lazily and again after DeviceGone.

    Opening initializes the display; closing leaves it showing what it shows."""

    _device = "customer display"

    def __init__(self, port: str, baudrate: int = 9600, columns: int = 20, rows: int = 2,
                 timeout: float = 0.5) -> None:
        """port is the device path (e.g. a stable /dev/serial/by-id link); timeout bounds each write.
        show() fills the first two rows; on a display with more rows, the others are kept blank."""
        if not 1 <= columns <= MAX_COLUMNS:
            raise ValueError(f"columns must be 1..{MAX_COLUMNS}, not {columns!r}")
        if not 2 <= rows <= MAX_ROWS:
            raise ValueError(f"rows must be 2..{MAX_ROWS}, not {rows!r}")
        super().__init__(port, baudrate, timeout=timeout, write_timeout=timeout)
        self.columns = columns
        self.rows = rows

    def _opened(self) -> None:
        """Initialize the display (blank, cursor off): a new connection cannot know what it shows."""
        self._write(SYNC + SELECT_DISPLAY + INITIALIZE + CURSOR_OFF + self._modes())

    def show(self, top: str, bottom: str = "") -> None:
        """Show two lines, each cut or padded to `columns`, replacing all that was on the screen."""
        lines = [top, bottom] + [""] * (self.rows - 2)
        update = bytearray(SYNC + SELECT_DISPLAY + self._modes())
        for row, text in enumerate(lines, start=1):
            update += US + b"$" + bytes((1, row)) + encode_line(text, self.columns)
        self._write(bytes(update))

    def clear(self) -> None:
        """Blank the screen."""
        self._write(SYNC + SELECT_DISPLAY + CLR)

    @staticmethod
    def _modes() -> bytes:
        """Overwrite mode, PC437, ASCII: the state every update relies on, re-set each time."""
        return OVERWRITE_MODE + CODE_TABLE_PC437 + INTERNATIONAL_USA

    def _write(self, data: bytes) -> None:
        """Write data in one go, opening (and initializing) the display first if need be;
        DeviceGone (port closed) if the port fails or the write times out."""
        with self._io() as port:
            port.write(data)


def _open_display(target: Target) -> CustomerDisplay:
    assert target.rule.path is not None  # the spec needs it
    return CustomerDisplay(target.rule.path, target.rule.baudrate)


register(DriverSpec("serial-display", kind="display", bus="serial", needs=("path",), open=_open_display))
