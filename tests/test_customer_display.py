"""The customer display driver against the simulated display, on real pseudo-terminals.

The driver opens the display's port through pyserial at a symlink path, as
it would open /dev/serial/by-id/...; the simulated display interprets what
arrives on the pty master and keeps what a customer would see.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from drivers.customer_display import CODEC, CustomerDisplay, encode_line
from drivers.device_text import transliterate
from drivers.errors import DeviceGone
from mocks.customer_display import CustomerDisplayMock
from tests.leaks import new_threads, open_ptys

TIMEOUT = 0.3  # the driver's write timeout
WAIT = 2.0  # upper bound for the mock to process what was sent
BLANK = " " * 20


def pad(text: str) -> str:
    return text.ljust(20)


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    return tmp_path / "dev"


@pytest.fixture
def mock(dev: Path) -> Iterator[CustomerDisplayMock]:
    with CustomerDisplayMock(dev / "display-1") as display:
        yield display


@pytest.fixture
def display(mock: CustomerDisplayMock) -> Iterator[CustomerDisplay]:
    with CustomerDisplay(str(mock.path), timeout=TIMEOUT) as driver:
        yield driver


def send_raw(mock: CustomerDisplayMock, data: bytes) -> None:
    """Bytes straight to the display, from another program on the same port."""
    with serial.Serial(str(mock.path), timeout=WAIT, write_timeout=WAIT) as port:
        port.write(data)


# -- text on the screen --------------------------------------------------------------------


def test_two_lines_appear_exactly(mock: CustomerDisplayMock, display: CustomerDisplay) -> None:
    display.show("Ground coffee   4.99", "TOTAL           4.99")
    assert mock.wait_for_text("TOTAL", WAIT) == ("Ground coffee   4.99", "TOTAL           4.99")
    assert mock.history == [("Ground coffee   4.99", "TOTAL           4.99")]
    assert mock.cursor_visible is False


def test_long_text_is_cut_and_short_text_padded(mock: CustomerDisplayMock, display: CustomerDisplay) -> None:
    display.show("Twenty-one characters", "x")
    assert mock.wait_for_text("Twenty", WAIT) == ("Twenty-one character", pad("x"))
    display.show("only the top")
    assert mock.wait_for_screen("only the top", "", WAIT) == (pad("only the top"), BLANK)


def test_a_second_show_replaces_the_whole_screen(mock: CustomerDisplayMock, display: CustomerDisplay) -> None:
    first = ("ABCDEFGHIJKLMNOPQRST", "abcdefghijklmnopqrst")
    display.show(*first)
    mock.wait_for_text("ABC", WAIT)
    display.show("Hi", "1")
    assert mock.wait_for_text("Hi", WAIT) == (pad("Hi"), pad("1"))  # nothing left over from the first
    assert mock.history == [first, (pad("Hi"), pad("1"))]  # and no half-replaced screen in between


def test_clear_empties_the_screen(mock: CustomerDisplayMock, display: CustomerDisplay) -> None:
    display.show("Welcome", "to NovaPOS")
    mock.wait_for_text("Welcome", WAIT)
    display.clear()
    assert mock.wait_for_screen("", "", WAIT) == (BLANK, BLANK)
    display.show("", "back")
    assert mock.wait_for_text("back", WAIT) == (BLANK, pad("back"))


# -- characters the display lacks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Crème brûlée 3,50 €", "Crème brûlée 3,50 EU"),  # PC437 has é, è, û; € is 'EUR', then cut
        ("Müsli Größe L", "Müsli Größe L"),
        ("Øl “special” – 2×", 'Ol "special" - 2x'),  # no Ø, quotes, dash or × in PC437
        ("Ōsaka ramen 日本", "Osaka ramen ??"),  # accent dropped; nothing sensible for CJK
        ("a\tb\nc\x1b@d\u00ade", "a b c?@de"),  # controls never reach the display as commands
        ("x\x1bp0\x19\x19\x1dV0y", "x?p0???V0y"),  # nor a printer's drawer pulse and cut
    ],
)
def test_non_ascii_is_shown_or_transliterated(
    mock: CustomerDisplayMock, display: CustomerDisplay, text: str, shown: str
) -> None:
    display.show(text, "end")
    assert mock.wait_for_text("end", WAIT) == (pad(shown), pad("end"))


def test_transliteration_and_encoding() -> None:
    assert transliterate("1,50 €", CODEC) == "1,50 EUR"
    assert transliterate("e\u0301", CODEC) == "é"  # decomposed input is composed first
    assert transliterate("ﬁne Ｆｏｏ ẞ", CODEC) == "fine Foo SS"
    assert encode_line("é€", 5) == b"\x82EUR "
    assert encode_line("x" * 30, 20) == b"x" * 20
    assert all(0x20 <= byte for byte in encode_line("".join(map(chr, range(0x300))), 40))


# -- glitches ------------------------------------------------------------------------------------


GARBAGE = [
    pytest.param(bytes(random.Random(7).randrange(256) for _ in range(3000)), id="noise"),
    pytest.param(b"\x1f$", id="cut-short-cursor-move"),
    pytest.param(b"\x1b", id="lone-ESC"),
    pytest.param(b"\x1f", id="lone-US"),
    pytest.param(b"\x1f\x02" + b"scrolled " * 7, id="vertical-scroll-mode"),
    pytest.param(b"\x1b=\x01hidden", id="display-deselected"),
    pytest.param(b"\x1b=\x01\x1b", id="deselected-then-lone-ESC"),  # without the NULs, ESC = 2 is lost
    pytest.param(b"\x1bt\x10\x1f$\x05\x02\xe9\x1fC\x01", id="code-table-and-cursor"),
    pytest.param(b"\x1b@\x1f$\x63\x63\x1b?\x1f?\x00\x7f\xff", id="out-of-range-and-unknown"),
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_is_survived_and_the_next_show_is_exact(
    mock: CustomerDisplayMock, display: CustomerDisplay, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    display.show("before", "glitch")
    mock.wait_for_text("glitch", WAIT)
    with caplog.at_level(logging.ERROR, logger="mocks.pty_device"):
        send_raw(mock, garbage)
        display.show("Total  12.50 EUR", "Thank you! é")
        assert mock.wait_for_screen("Total  12.50 EUR", "Thank you! é", WAIT)
    assert not caplog.records  # the mock never failed on what it received
    assert mock.plugged


def test_each_line_is_placed_and_modes_reset_on_every_show(
    mock: CustomerDisplayMock, display: CustomerDisplay
) -> None:
    display.show("a", "b")
    mock.wait_for_text("b", WAIT)
    update = mock.raw[mock.raw.rindex(b"\x00\x00\x00"):]
    assert update == (b"\x00\x00\x00\x1b=\x02\x1f\x01\x1bt\x00\x1bR\x00"
                      + b"\x1f$\x01\x01" + b"a".ljust(20) + b"\x1f$\x01\x02" + b"b".ljust(20))


def test_four_line_display_keeps_the_rest_blank(dev: Path) -> None:
    with CustomerDisplayMock(dev / "big", columns=40, rows=4) as big:
        send_raw(big, b"\x1f$\x01\x04stale")
        big.wait_for_text("stale", WAIT)
        with CustomerDisplay(str(big.path), columns=40, rows=4, timeout=TIMEOUT) as driver:
            driver.show("top", "bottom")
            deadline = time.monotonic() + WAIT
            while big.screen[1].strip() != "bottom" and time.monotonic() < deadline:
                time.sleep(0.005)
            assert big.screen == ("top".ljust(40), "bottom".ljust(40), " " * 40, " " * 40)


def test_bad_geometry_is_refused() -> None:
    for columns, rows in [(0, 2), (41, 2), (20, 1), (20, 5)]:
        with pytest.raises(ValueError):
            CustomerDisplay("/nonexistent", columns=columns, rows=rows)


# -- unplug and replug ------------------------------------------------------------------------


def test_unplug_is_device_gone_at_once_and_replug_works(mock: CustomerDisplayMock, display: CustomerDisplay) -> None:
    display.show("before", "unplug")
    mock.wait_for_text("unplug", WAIT)
    mock.unplug()
    assert mock.lines == (BLANK, BLANK)  # the display lost power
    started = time.monotonic()
    with pytest.raises(DeviceGone):
        display.show("nobody", "sees this")
    with pytest.raises(DeviceGone):
        display.show("still", "gone")  # tries to open the port again: it is not there
    with pytest.raises(DeviceGone):
        CustomerDisplay(str(mock.path)).open()
    assert time.monotonic() - started < 1.0

    mock.plug()
    with CustomerDisplay(str(mock.path), timeout=TIMEOUT) as again:
        again.show("after", "replug")
        assert mock.wait_for_text("replug", WAIT) == (pad("after"), pad("replug"))
    display.show("old driver", "reopens")  # the first instance opens the new port too
    assert mock.wait_for_text("reopens", WAIT) == (pad("old driver"), pad("reopens"))
    display.close()


def test_a_display_that_stops_reading_times_out_as_device_gone(dev: Path) -> None:
    """No flow control: a port nobody drains fills up, and the write timeout turns that into DeviceGone."""

    class Stuck(CustomerDisplayMock):
        release: threading.Event

        def on_bytes(self, data: bytes) -> None:
            self.release.wait(WAIT)

    stuck = Stuck(dev / "stuck")
    stuck.release = threading.Event()
    with stuck:
        driver = CustomerDisplay(str(stuck.path), timeout=0.1)
        started = time.monotonic()
        with pytest.raises(DeviceGone):
            for _ in range(10_000):
                driver.show("x" * 20, "y" * 20)
        assert time.monotonic() - started < WAIT
        stuck.release.set()
        driver.close()


def test_plug_cycles_leak_no_fds_or_threads(dev: Path) -> None:
    ptys, threads = open_ptys(), set(threading.enumerate())
    mock = CustomerDisplayMock(dev / "cycle")
    for i in range(10):
        mock.plug()
        with CustomerDisplay(str(mock.path), timeout=TIMEOUT) as driver:
            driver.show(f"cycle {i}", "")
            mock.wait_for_text(f"cycle {i}", WAIT)
            mock.unplug()
            with pytest.raises(DeviceGone):
                driver.show("gone", "")
    mock.close()
    assert open_ptys() - ptys == set() and new_threads(threads) == []
