"""Serial device drivers against simulated devices on real pseudo-terminals.

Each driver opens its port through pyserial at a symlink path, as it would
open /dev/serial/by-id/...; the simulated device answers on the pty master.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from escpos.printer import Usb

from actors.printing.document import PrintDocument, PrintLine
from drivers.cash_drawer import SerialCashDrawer
from drivers.errors import DeviceGone, DeviceProtocolError
from drivers.escpos_printer import EscPosPrinter, PrinterStatus, PrinterUnavailable
from drivers.payment_terminal import (
    SerialPaymentTerminal,
    TerminalRefused,
    TerminalStatus,
    encode_line,
    parse_line,
)
from drivers.serial_scanner import SerialScanner
from mocks.cash_drawer import SerialDrawerMock
from mocks.network_printer import MockNetworkPrinter
from mocks.payment_terminal import MASKED_CARD, PaymentTerminalMock
from mocks.pty_device import PtySerialDevice
from mocks.serial_printer import SerialPrinterMock
from mocks.serial_scanner import SerialScannerMock
from tests.leaks import new_threads, open_ptys

TIMEOUT = 0.3  # driver timeouts; the mocks answer in well under 1 ms
WAIT = 2.0  # upper bound for a mock to process what was sent
EAN = "4006381333931"
AnyPrinterMock = SerialPrinterMock | MockNetworkPrinter


def doc(*texts: str, cut: bool = True) -> PrintDocument:
    return PrintDocument(tuple(PrintLine(text) for text in texts), cut=cut)


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    return tmp_path / "dev"


# -- the pty device ----------------------------------------------------------------


class _Recorder(PtySerialDevice):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.received = bytearray()

    def on_bytes(self, data: bytes) -> None:
        self.received += data


def test_port_is_a_stable_symlink_to_a_raw_pty(dev: Path) -> None:
    with _Recorder(dev / "thing") as device:
        assert os.readlink(dev / "thing").startswith("/dev/pts/")
        device.write(b"sent before any driver opened the port\n")
        with serial.Serial(str(dev / "thing"), timeout=WAIT) as port:
            port.write(b"ping")
            deadline = time.monotonic() + WAIT
            while len(device.received) < 4 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert device.received == b"ping"  # nothing echoed back to the device
            device.write(bytes(range(256)))  # raw: no byte is translated or swallowed
            assert port.read(256) == bytes(range(256))
        device.unplug()
        assert not device.plugged and not (dev / "thing").exists()
        device.plug()
        assert device.plugged and os.readlink(dev / "thing").startswith("/dev/pts/")


def test_plug_cycles_leak_no_fds_or_threads(dev: Path) -> None:
    ptys, threads = open_ptys(), set(threading.enumerate())
    scanner = SerialScannerMock(dev / "scanner")
    for i in range(20):
        scanner.plug()
        driver = SerialScanner(str(dev / "scanner"))
        driver.open()
        scanner.scan(f"{i}")
        assert driver.read_barcodes(WAIT) == [f"{i}"]
        scanner.unplug()
        with pytest.raises(DeviceGone):
            driver.read_barcodes(WAIT)
        driver.close()
    scanner.close()
    assert open_ptys() - ptys == set() and new_threads(threads) == []


# -- scanner -------------------------------------------------------------------------


@pytest.fixture
def scanner(dev: Path) -> Iterator[SerialScannerMock]:
    with SerialScannerMock(dev / "scanner-1") as mock:
        yield mock


@pytest.fixture
def reader(scanner: SerialScannerMock) -> Iterator[SerialScanner]:
    with SerialScanner(str(scanner.path)) as driver:
        yield driver


def test_barcodes_arrive_whole_split_and_batched(scanner: SerialScannerMock, reader: SerialScanner) -> None:
    scanner.scan(EAN)
    assert reader.read_barcodes(WAIT) == [EAN]

    scanner.send_raw(b"1234")
    assert reader.read_barcodes(0.1) == []  # no terminator yet: it waits
    scanner.send_raw(b"5678\r\n")
    assert reader.read_barcodes(WAIT) == ["12345678"]

    scanner.send_raw(b"A-1\rB 2\nC\x1d3\r\n")  # CR, LF, CRLF; GS is a GS1 separator
    assert reader.read_barcodes(WAIT) == ["A-1", "B 2", "C\x1d3"]
    assert reader.read_barcodes(0.05) == []  # the CRLF pair did not make an empty barcode


def test_configured_suffix_ends_a_barcode(dev: Path) -> None:
    with SerialScannerMock(dev / "tab", suffix=b"\t") as mock, SerialScanner(str(mock.path), suffix=b"\t") as driver:
        mock.scan("ABC")
        mock.scan("DEF")
        assert driver.read_barcodes(WAIT) + driver.read_barcodes(0.05) == ["ABC", "DEF"]


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\xff\x1b[2J\x80\r",  # noise on plug-in
        b"12\x0045\r",  # a code with a byte lost to noise: never delivered in part
        b"\xc3\xa9t\xc3\xa9\n",  # non-ASCII
        b"9" * 129 + b"\r",  # one char over the limit
        b"X" * 5000 + b"\r\n",  # far over it: dropped without being buffered
    ],
)
def test_junk_is_dropped_and_the_next_barcode_arrives(
    scanner: SerialScannerMock, reader: SerialScanner, junk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="drivers.serial_scanner"):
        scanner.send_raw(junk)
        scanner.scan(EAN)
        assert reader.read_barcodes(WAIT) + reader.read_barcodes(0.05) == [EAN]
    assert "discarding" in caplog.text


def test_128_chars_is_still_a_barcode(scanner: SerialScannerMock, reader: SerialScanner) -> None:
    scanner.scan("7" * 128)
    assert reader.read_barcodes(WAIT) == ["7" * 128]


def test_unplug_is_device_gone_at_once_and_replug_works(scanner: SerialScannerMock, reader: SerialScanner) -> None:
    scanner.scan("before")
    assert reader.read_barcodes(WAIT) == ["before"]
    scanner.unplug()
    started = time.monotonic()
    with pytest.raises(DeviceGone):
        reader.read_barcodes(5.0)  # must not wait out its timeout
    assert time.monotonic() - started < 1.0
    with pytest.raises(DeviceGone):
        SerialScanner(str(scanner.path)).open()

    scanner.plug()
    with SerialScanner(str(scanner.path)) as again:
        scanner.scan("after")
        assert again.read_barcodes(WAIT) == ["after"]


# -- receipt printer ----------------------------------------------------------------


@pytest.fixture
def serial_printer(dev: Path) -> Iterator[SerialPrinterMock]:
    with SerialPrinterMock(dev / "printer") as mock:
        yield mock


@pytest.fixture
def printer(serial_printer: SerialPrinterMock) -> Iterator[EscPosPrinter]:
    with EscPosPrinter.serial(str(serial_printer.path), timeout=TIMEOUT) as driver:
        yield driver


def test_serial_printer_prints_and_reports_status(serial_printer: SerialPrinterMock, printer: EscPosPrinter) -> None:
    printer.print_document(PrintDocument((PrintLine("Café", align="center", bold=True), PrintLine("3,50 €"))))
    assert serial_printer.wait_for_receipts(1, WAIT) == ["Café\n3,50 €"]
    assert serial_printer.raw.startswith(b"\x1b@")
    serial_printer.set_paper("near_end")
    assert printer.status() == PrinterStatus(online=True, paper="near_end")


def test_serial_status_does_not_wait_out_the_timeout(dev: Path, serial_printer: SerialPrinterMock) -> None:
    with EscPosPrinter.serial(str(serial_printer.path), timeout=2.0) as driver:
        started = time.monotonic()
        assert driver.status() == PrinterStatus(online=True, paper="ok")
        assert time.monotonic() - started < 0.5  # python-escpos' own read asks for 16 bytes and waits 2 s


@pytest.fixture(params=["serial", "network"])
def any_printer(request: pytest.FixtureRequest, dev: Path) -> Iterator[tuple[AnyPrinterMock, EscPosPrinter]]:
    """Each simulated printer with a driver on it."""
    if request.param == "serial":
        with SerialPrinterMock(dev / "printer") as mock, EscPosPrinter.serial(str(mock.path), timeout=TIMEOUT) as drv:
            yield mock, drv
    else:
        with MockNetworkPrinter() as net, EscPosPrinter.network("127.0.0.1", net.port, timeout=TIMEOUT) as driver:
            yield net, driver


def _power(mock: AnyPrinterMock, on: bool) -> None:
    if isinstance(mock, SerialPrinterMock):
        mock.plug() if on else mock.unplug()
    else:
        mock.set_online(on)


def test_confirmed_print_has_been_received_when_it_returns(any_printer: tuple[AnyPrinterMock, EscPosPrinter]) -> None:
    mock, driver = any_printer
    assert driver.print_document_confirmed(doc("confirmed")) == PrinterStatus(online=True, paper="ok")
    assert mock.receipts == ["confirmed"]  # no waiting: the answer came after the job
    mock.set_paper("out")
    assert driver.print_document_confirmed(doc("no paper")) == PrinterStatus(online=False, paper="out")
    assert mock.receipts == ["confirmed"]  # the caller sees paper out and decides to retry


def test_hostile_text_is_printed_not_obeyed_on_every_transport(
        any_printer: tuple[AnyPrinterMock, EscPosPrinter]) -> None:
    mock, driver = any_printer
    driver.print_document_confirmed(doc("x\x1bp0\x19\x19\x1dV0y", "\x10\x14\x01\x00\x05 pulse", cut=False))
    driver.print_document_confirmed(doc("end"))
    assert mock.receipts == ["x?p0???V0y\n????? pulse\nend"]  # one receipt, one cut: the job's own
    assert mock.drawer_kicks == []


def test_confirmed_print_raises_when_the_printer_is_gone(any_printer: tuple[AnyPrinterMock, EscPosPrinter]) -> None:
    mock, driver = any_printer
    _power(mock, False)
    started = time.monotonic()
    with pytest.raises(PrinterUnavailable) as raised:
        driver.print_document_confirmed(doc("nowhere"))
    assert isinstance(raised.value, DeviceGone)
    assert time.monotonic() - started < TIMEOUT
    _power(mock, True)
    assert driver.print_document_confirmed(doc("back")).online
    assert mock.receipts == ["back"]


def test_confirmed_print_raises_when_the_printer_does_not_answer(dev: Path) -> None:
    with PtySerialDevice(dev / "mute") as mute, EscPosPrinter.serial(str(mute.path), timeout=0.2) as driver:
        started = time.monotonic()
        with pytest.raises(PrinterUnavailable, match="did not confirm"):
            driver.print_document_confirmed(doc("into the void"))
        assert time.monotonic() - started < 0.2 + 0.3


def test_job_cut_off_by_unplug_is_not_a_receipt(any_printer: tuple[AnyPrinterMock, EscPosPrinter]) -> None:
    mock, driver = any_printer
    driver.print_document(doc("half a receipt", cut=False))
    mock.wait_for_raw(len(b"half a receipt"), WAIT)
    _power(mock, False)
    _power(mock, True)
    driver.print_document(doc("whole receipt"))
    assert mock.wait_for_receipts(1, WAIT) == ["whole receipt"]


def test_serial_printer_survives_malformed_bytes(serial_printer: SerialPrinterMock, printer: EscPosPrinter) -> None:
    with serial.Serial(str(serial_printer.path), timeout=WAIT) as port:
        port.write(b"\x1dv0\x00\xff\xff\xff\xff" + bytes(range(256)) + b"\x1b")  # image declaring 4 GB, lone ESC
    serial_printer.unplug()  # the half command dies with the power
    serial_printer.plug()
    assert printer.print_document_confirmed(doc("still printing")).online
    assert serial_printer.receipts[-1] == "still printing"


@pytest.mark.parametrize(("pin", "m"), [(2, 0), (5, 1)])
def test_a_drawer_on_a_serial_printer_kicks_through_it(
    serial_printer: SerialPrinterMock, printer: EscPosPrinter, pin: int, m: int
) -> None:
    printer.kick_drawer(pin)
    assert serial_printer.wait_for_drawer_kicks(1, WAIT) == [pin]
    assert serial_printer.raw == b"\x1bp" + bytes([m, 50, 50])


@pytest.mark.skipif(Usb.is_usable(), reason="pyusb is installed")
def test_usb_printer_without_pyusb_says_so() -> None:
    with pytest.raises(RuntimeError, match="pyusb"):
        EscPosPrinter.usb(0x04B8, 0x0E15)


# -- cash drawer ----------------------------------------------------------------------


@pytest.fixture
def drawer_mock(dev: Path) -> Iterator[SerialDrawerMock]:
    with SerialDrawerMock(dev / "drawer") as mock:
        yield mock


def test_serial_drawer_kick_and_status(drawer_mock: SerialDrawerMock) -> None:
    with SerialCashDrawer(str(drawer_mock.path), timeout=TIMEOUT) as drawer:
        assert drawer.is_open() is False
        drawer.kick()
        assert drawer.is_open() is True  # answered after the kick: it was acted on
        assert drawer_mock.raw == b"\x10\x04\x01" + b"\x1bp\x00\x32\x32" + b"\x10\x04\x01"
        drawer_mock.close_drawer()
        assert drawer.is_open() is False
        drawer.kick(5)
        assert drawer_mock.wait_for_kicks(2, WAIT) == [2, 5]
        with pytest.raises(ValueError):
            drawer.kick(3)


class _Answering(PtySerialDevice):
    """Answers every chunk with fixed bytes."""

    def __init__(self, path: Path, answer: bytes) -> None:
        super().__init__(path)
        self.answer = answer

    def on_bytes(self, data: bytes) -> None:
        self.write(self.answer)


def test_serial_drawer_gone_silent_or_talking_nonsense(dev: Path, drawer_mock: SerialDrawerMock) -> None:
    drawer = SerialCashDrawer(str(drawer_mock.path), timeout=TIMEOUT)
    drawer.open()
    drawer_mock.unplug()
    with pytest.raises(DeviceGone):
        drawer.is_open()
    with pytest.raises(DeviceGone):
        drawer.kick()
    with _Answering(dev / "mute", b"") as mute:
        with pytest.raises(DeviceGone, match="does not answer"):
            SerialCashDrawer(str(mute.path), timeout=0.1).is_open()
    with _Answering(dev / "odd", b"\x00") as odd:
        with pytest.raises(DeviceProtocolError):
            SerialCashDrawer(str(odd.path), timeout=0.1).is_open()


# -- payment terminal -------------------------------------------------------------------


@pytest.fixture
def terminal_mock(dev: Path) -> Iterator[PaymentTerminalMock]:
    with PaymentTerminalMock(dev / "terminal", processing_time=0.05) as mock:
        yield mock


@pytest.fixture
def terminal(terminal_mock: PaymentTerminalMock) -> Iterator[SerialPaymentTerminal]:
    with SerialPaymentTerminal(str(terminal_mock.path), response_timeout=TIMEOUT) as driver:
        yield driver


def settled(terminal: SerialPaymentTerminal, reference: str) -> TerminalStatus:
    deadline = time.monotonic() + WAIT
    while not (status := terminal.status(reference)).final and time.monotonic() < deadline:
        time.sleep(0.01)
    return status


def test_payment_approved(terminal_mock: PaymentTerminalMock, terminal: SerialPaymentTerminal) -> None:
    terminal.start_payment(1250, "EUR", "sale-1")
    assert terminal.status("sale-1") == TerminalStatus("sale-1", "waiting_for_card", 1250, "EUR")
    assert terminal_mock.present_card() == "sale-1"
    assert terminal.status("sale-1").stage == "processing"
    status = settled(terminal, "sale-1")
    assert (status.stage, status.amount_minor, status.currency) == ("approved", 1250, "EUR")
    assert status.masked_card == MASKED_CARD
    assert len(status.auth_code) == 6


def test_payment_declined(terminal_mock: PaymentTerminalMock, terminal: SerialPaymentTerminal) -> None:
    terminal.start_payment(999, "EUR", "sale-2")
    terminal_mock.present_card(approve=False)
    status = settled(terminal, "sale-2")
    assert (status.stage, status.auth_code) == ("declined", "")
    assert status.message


def test_cancel_only_while_waiting_for_the_card(
    terminal_mock: PaymentTerminalMock, terminal: SerialPaymentTerminal
) -> None:
    terminal.start_payment(500, "EUR", "sale-3")
    assert terminal.cancel("sale-3").stage == "cancelled"
    with pytest.raises(RuntimeError):
        terminal_mock.present_card()  # nothing waits any more
    terminal.start_payment(500, "EUR", "sale-4")
    terminal_mock.present_card()
    assert settled(terminal, "sale-4").stage == "approved"
    assert terminal.cancel("sale-4").stage == "approved"  # too late: refund it instead
    assert terminal.cancel("never-started").stage == "idle"


def test_refund(terminal_mock: PaymentTerminalMock, terminal: SerialPaymentTerminal) -> None:
    approved = terminal.refund(700, "EUR", "refund-1")
    assert (approved.stage, approved.amount_minor) == ("approved", 700) and approved.auth_code
    terminal_mock.approve_refunds = False
    assert terminal.refund(800, "EUR", "refund-2").stage == "declined"
    assert terminal.refund(700, "EUR", "refund-1") == approved  # a repeat refunds nothing more


def test_duplicate_start_is_the_same_payment(
    terminal_mock: PaymentTerminalMock, terminal: SerialPaymentTerminal
) -> None:
    terminal.start_payment(1250, "EUR", "sale-5")
    terminal.start_payment(1250, "EUR", "sale-5")
    assert terminal_mock.references == ["sale-5"]
    terminal_mock.present_card()
    assert settled(terminal, "sale-5").stage == "approved"
    terminal.start_payment(1250, "EUR", "sale-5")
    assert terminal.status("sale-5").stage == "approved"
    with pytest.raises(RuntimeError):
        terminal_mock.present_card()  # no second payment waits for a card
    with pytest.raises(TerminalRefused) as conflict:
        terminal.start_payment(1300, "EUR", "sale-5")
    assert conflict.value.code == "CONFLICT"


def test_one_payment_at_a_time(terminal_mock: PaymentTerminalMock, terminal: SerialPaymentTerminal) -> None:
    terminal.start_payment(100, "EUR", "sale-6")
    with pytest.raises(TerminalRefused) as busy:
        terminal.start_payment(200, "EUR", "sale-7")
    assert busy.value.code == "BUSY"
    assert terminal_mock.references == ["sale-6"]


def test_bad_requests_get_error_lines(terminal_mock: PaymentTerminalMock) -> None:
    with serial.Serial(str(terminal_mock.path), timeout=WAIT) as port:
        port.write(b"1|STATUS|sale-1*407A\r\n")  # CRC-16/CCITT-FALSE, computed independently
        assert parse_line(port.readline()) == (1, ["STATUS", "sale-1", "idle", *[""] * 8])  # protocol v3: 11 fields
        port.write(b"2|STATUS|sale-1*407A\r\n")  # checksum no longer matches
        seq, fields = parse_line(port.readline())
        assert (seq, fields[:2]) == (0, ["ERR", "FRAME"])
        bad = [(["DANCE"], "UNKNOWN"), (["PAY", "sale-1", "12.50", "EUR"], "SYNTAX"), (["PAY", "s"], "SYNTAX")]
        for request, code in bad:
            port.write(encode_line(3, request))
            seq, fields = parse_line(port.readline())
            assert (seq, fields[:2]) == (3, ["ERR", code])
        port.write(b"\x00\xff" * 300 + b"\n")  # over-long binary junk
        assert parse_line(port.readline())[1][:2] == ["ERR", "FRAME"]
        port.write(encode_line(4, ["STATUS", "sale-1"]))
        assert parse_line(port.readline())[0] == 4  # still talking


class _Lossy(PaymentTerminalMock):
    """Loses or damages its first responses, as a noisy line would."""

    def __init__(self, path: Path, lose: int = 0, damage: int = 0) -> None:
        super().__init__(path, processing_time=0.05)
        self.lose, self.damage = lose, damage

    def write(self, data: bytes) -> None:
        if self.lose:
            self.lose -= 1
        elif self.damage:
            self.damage -= 1
            super().write(data.replace(b"|", b"!", 1))
        else:
            super().write(data)


@pytest.mark.parametrize(("lose", "damage"), [(1, 0), (0, 2)])
def test_lost_or_damaged_response_is_retried_without_a_second_payment(dev: Path, lose: int, damage: int) -> None:
    with _Lossy(dev / "lossy", lose=lose, damage=damage) as mock:
        with SerialPaymentTerminal(str(mock.path), response_timeout=0.2) as terminal:
            terminal.start_payment(1250, "EUR", "sale-8")
            assert mock.references == ["sale-8"]
            assert terminal.status("sale-8").stage == "waiting_for_card"


def test_silent_or_garbling_terminal(dev: Path) -> None:
    with _Lossy(dev / "lossy", lose=3) as silent:
        with SerialPaymentTerminal(str(silent.path), response_timeout=0.1) as terminal:
            with pytest.raises(DeviceGone, match="does not answer"):
                terminal.status("sale-9")
    with _Lossy(dev / "garbling", damage=3) as garbling:
        with SerialPaymentTerminal(str(garbling.path), response_timeout=0.1) as terminal:
            with pytest.raises(DeviceProtocolError):
                terminal.status("sale-9")


def test_terminal_unplugged_mid_payment(terminal_mock: PaymentTerminalMock, terminal: SerialPaymentTerminal) -> None:
    terminal.start_payment(4200, "EUR", "sale-10")
    terminal_mock.unplug()
    started = time.monotonic()
    with pytest.raises(DeviceGone):
        terminal.status("sale-10")
    assert time.monotonic() - started < 1.0
    terminal_mock.plug()
    with SerialPaymentTerminal(str(terminal_mock.path), response_timeout=TIMEOUT) as again:
        assert again.status("sale-10").stage == "waiting_for_card"  # ask, never start anew
        terminal_mock.present_card()
        assert settled(again, "sale-10").stage == "approved"


def test_auto_approve_for_the_demo(dev: Path) -> None:
    with PaymentTerminalMock(dev / "demo", auto_approve_after=0.05, processing_time=0.05) as mock:
        with SerialPaymentTerminal(str(mock.path), response_timeout=TIMEOUT) as terminal:
            terminal.start_payment(100, "EUR", "demo-1")
            assert settled(terminal, "demo-1").stage == "approved"


def test_driver_checks_arguments_before_sending(
    terminal_mock: PaymentTerminalMock, terminal: SerialPaymentTerminal
) -> None:
    for amount, currency, reference in [(0, "EUR", "r"), (12.5, "EUR", "r"), (100, "eur", "r"), (100, "EUR", "a|b")]:
        with pytest.raises(ValueError):
            terminal.start_payment(amount, currency, reference)  # type: ignore[arg-type]
    assert terminal_mock.references == []


def test_protocol_document_examples_are_valid_lines() -> None:
    text = (Path(__file__).parent.parent / "docs" / "payment-terminal-protocol.md").read_text()
    examples = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(("host:", "terminal:"))]
    intact = [line for line in examples if "damaged" not in line]
    assert len(intact) == 23  # v2: VOID, and scheme and signature in STATUS; v3: PAY OFFLINE and a stored card
    for line in intact:
        parse_line(line.encode("ascii") + b"\r\n")
