"""The ESC/POS driver against the simulated printer, over real TCP on 127.0.0.1."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
import trio
from escpos.printer import Dummy, Network
from PIL import Image

from actors.printing.document import PrintDocument, PrintLine
from actors.printing.receipt import ReceiptContext, render_receipt
from drivers.escpos_printer import EscPosPrinter, PrinterStatus, PrinterUnavailable
from mocks.escpos_parser import Cut, DrawerPulse, EscPosParser, Event, Feed, Text
from mocks.network_printer import MockNetworkPrinter
from novapos.config.receipt import ReceiptSettings

TIMEOUT = 0.5  # driver socket timeout; the mock answers in well under 1 ms
WAIT = 2.0  # upper bound for the mock to process what was sent


@pytest.fixture
def mock() -> Iterator[MockNetworkPrinter]:
    with MockNetworkPrinter() as printer:
        yield printer


@pytest.fixture
def driver(mock: MockNetworkPrinter) -> Iterator[EscPosPrinter]:
    with EscPosPrinter("127.0.0.1", mock.port, timeout=TIMEOUT) as printer:
        yield printer


def doc(*texts: str, **options: bool) -> PrintDocument:
    return PrintDocument(tuple(PrintLine(text) for text in texts), **options)


# -- printing ----------------------------------------------------------------


def test_document_text_and_styles_reach_the_printer(mock: MockNetworkPrinter, driver: EscPosPrinter) -> None:
    driver.print_document(
        PrintDocument(
            (
                PrintLine("Heading", align="center", bold=True, double=True),
                PrintLine("Café au lait   3,50 €"),
                PrintLine("Ünïcödé ½ line", align="right"),
            )
        )
    )
    assert mock.wait_for_receipts(1, WAIT) == ["Heading\nCafé au lait   3,50 €\nÜnïcödé ½ line"]
    raw = mock.raw
    assert raw.startswith(b"\x1b@")  # ESC @ resets the printer first
    assert b"\x1ba\x01" in raw and b"\x1bE\x01" in raw  # centred, bold
    assert b"\x1b!\x30" in raw  # double width and height
    assert b"\x1ba\x02" in raw  # right aligned
    assert b"\x1dV" in raw  # cut


def test_cut_separates_receipts(mock: MockNetworkPrinter, driver: EscPosPrinter) -> None:
    driver.print_document(doc("first job"))
    driver.print_document(doc("second job, line 1", "second job, line 2"))
    assert mock.wait_for_receipts(2, WAIT) == ["first job", "second job, line 1\nsecond job, line 2"]


def test_uncut_job_runs_on_into_the_next_receipt(mock: MockNetworkPrinter, driver: EscPosPrinter) -> None:
    driver.print_document(doc("no cut", cut=False))
    driver.print_document(doc("cut here"))
    assert mock.wait_for_receipts(1, WAIT) == ["no cut\ncut here"]


def test_big_job_arrives_whole(mock: MockNetworkPrinter, driver: EscPosPrinter) -> None:
    lines = [f"line {i:03d} " + "x" * 30 for i in range(200)]
    driver.print_document(doc(*lines))
    assert mock.wait_for_receipts(1, WAIT) == ["\n".join(lines)]


async def test_driver_works_from_trio_threads(mock: MockNetworkPrinter) -> None:
    printer = EscPosPrinter("127.0.0.1", mock.port, timeout=TIMEOUT)
    try:
        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(trio.to_thread.run_sync, printer.print_document, doc(f"job {i}"))
        status = await trio.to_thread.run_sync(printer.status)
    finally:
        printer.close()
    assert status == PrinterStatus(online=True, paper="ok")
    assert sorted(mock.wait_for_receipts(5, WAIT)) == [f"job {i}" for i in range(5)]


# -- cash drawer ---------------------------------------------------------------


@pytest.mark.parametrize(("pin", "m"), [(2, 0), (5, 1)])
def test_drawer_kick_sends_esc_p_with_connector_pin(
    mock: MockNetworkPrinter, driver: EscPosPrinter, pin: int, m: int
) -> None:
    driver.kick_drawer(pin)
    assert mock.wait_for_drawer_kicks(1, WAIT) == [pin]
    assert mock.raw == b"\x1bp" + bytes([m, 50, 50])  # ESC p m t1 t2: 100 ms on, 100 ms off


def test_document_opens_drawer_after_the_cut(mock: MockNetworkPrinter) -> None:
    with EscPosPrinter("127.0.0.1", mock.port, timeout=TIMEOUT, drawer_pin=5) as printer:
        printer.print_document(doc("paid", open_drawer=True))
    assert mock.wait_for_drawer_kicks(1, WAIT) == [5]
    assert mock.receipts == ["paid"]
    raw = mock.raw
    assert raw.endswith(b"\x1bp\x01\x32\x32")
    assert raw.rindex(b"\x1dV") < raw.rindex(b"\x1bp")


def test_drawer_pin_must_be_2_or_5(driver: EscPosPrinter) -> None:
    with pytest.raises(ValueError):
        driver.kick_drawer(3)
    with pytest.raises(ValueError):
        EscPosPrinter("127.0.0.1", 9100, drawer_pin=1)


# -- status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paper", "expected"),
    [
        ("ok", PrinterStatus(online=True, paper="ok")),
        ("near_end", PrinterStatus(online=True, paper="near_end")),
        ("out", PrinterStatus(online=False, paper="out")),  # paper end takes a printer offline
    ],
)
def test_status_reports_paper_sensors(
    mock: MockNetworkPrinter, driver: EscPosPrinter, paper: str, expected: PrinterStatus
) -> None:
    mock.set_paper(paper)  # type: ignore[arg-type]
    assert driver.status() == expected


@pytest.mark.parametrize(
    ("paper", "replies"),
    [
        ("ok", [0x12, 0x12, 0x12, 0x12]),
        ("near_end", [0x12, 0x12, 0x12, 0x1E]),
        ("out", [0x1A, 0x32, 0x12, 0x7E]),
    ],
)
def test_mock_status_bytes_follow_dle_eot(mock: MockNetworkPrinter, paper: str, replies: list[int]) -> None:
    mock.set_paper(paper)  # type: ignore[arg-type]
    with socket.create_connection(("127.0.0.1", mock.port), timeout=WAIT) as sock:
        for n, expected in zip(range(1, 5), replies, strict=False):
            sock.sendall(b"\x10\x04" + bytes([n]))
            assert sock.recv(16) == bytes([expected])


@pytest.mark.parametrize(("paper", "escpos_paper_status"), [("ok", 2), ("near_end", 1), ("out", 0)])
def test_python_escpos_reads_mock_status_the_same_way(
    mock: MockNetworkPrinter, paper: str, escpos_paper_status: int
) -> None:
    mock.set_paper(paper)  # type: ignore[arg-type]
    printer = Network("127.0.0.1", port=mock.port, timeout=TIMEOUT)
    printer.open()
    try:
        assert printer.paper_status() == escpos_paper_status
        assert printer.is_online() == (paper != "out")
    finally:
        printer.close()


def test_paper_out_prints_nothing(mock: MockNetworkPrinter, driver: EscPosPrinter) -> None:
    mock.set_paper("out")
    driver.print_document(doc("lost", open_drawer=True))
    assert driver.status().paper == "out"  # a round trip: the job before it was processed
    assert mock.receipts == [] and mock.drawer_kicks == []
    mock.set_paper("ok")
    driver.print_document(doc("printed"))
    assert mock.wait_for_receipts(1, WAIT) == ["printed"]


def test_offline_printer_fails_fast_and_comes_back(mock: MockNetworkPrinter, driver: EscPosPrinter) -> None:
    driver.print_document(doc("before"))
    mock.wait_for_receipts(1, WAIT)
    mock.set_online(False)

    started = time.monotonic()
    assert driver.status() == PrinterStatus(online=False, paper="unknown")
    with pytest.raises(PrinterUnavailable):
        driver.print_document(doc("while unplugged"))
    with pytest.raises(PrinterUnavailable):
        driver.kick_drawer()
    with pytest.raises(PrinterUnavailable):
        driver.connect()
    assert time.monotonic() - started < TIMEOUT

    mock.set_online(True)
    assert driver.status() == PrinterStatus(online=True, paper="ok")
    driver.print_document(doc("after"))
    assert mock.wait_for_receipts(2, WAIT) == ["before", "after"]


def test_connection_closed_by_the_printer_is_replaced(mock: MockNetworkPrinter, driver: EscPosPrinter) -> None:
    driver.print_document(doc("one"))
    mock.wait_for_receipts(1, WAIT)
    mock.set_online(False)  # power cycle, or the printer's idle timeout: it closes our connection
    mock.set_online(True)
    driver.print_document(doc("two"))  # must not vanish into the dead connection
    assert mock.wait_for_receipts(2, WAIT) == ["one", "two"]


@contextmanager
def scripted_printer(replies: dict[int, bytes]) -> Iterator[int]:
    """A bare TCP server answering DLE EOT n with replies[n]: bytes the mock never sends."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(WAIT)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while request := conn.recv(3):
                conn.sendall(replies[request[2]])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        thread.join(WAIT)


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        ({1: b"\x12", 4: b"\x72"}, PrinterStatus(online=True, paper="out")),  # end sensor only
        ({1: b"\x16", 4: b"\x12"}, PrinterStatus(online=True, paper="ok")),  # drawer sensor bit
        ({1: b"\x1a", 2: b"\x16", 3: b"\x12", 4: b"\x16"},  # offline, cover open
         PrinterStatus(online=False, paper="near_end", problem="cover open: close the printer's cover")),
        ({1: b"\x1a", 2: b"\x52", 3: b"\x1a", 4: b"\x12"},  # offline, autocutter error
         PrinterStatus(online=False, paper="ok", problem="autocutter error: clear the paper jam at the cutter")),
        ({1: b"\x00", 4: b"\x12"}, PrinterStatus(online=False, paper="unknown")),  # not a status byte
    ],
)
def test_status_bytes_are_decoded_per_bit(replies: dict[int, bytes], expected: PrinterStatus) -> None:
    with scripted_printer(replies) as port:
        printer = EscPosPrinter("127.0.0.1", port, timeout=TIMEOUT)
        try:
            assert printer.status() == expected
        finally:
            printer.close()


def test_unanswered_status_is_offline_within_the_timeout() -> None:
    # A host that accepts connections but never answers (a hung printer).
    with socket.create_server(("127.0.0.1", 0)) as silent:
        printer = EscPosPrinter("127.0.0.1", silent.getsockname()[1], timeout=0.2)
        started = time.monotonic()
        assert printer.status() == PrinterStatus(online=False, paper="unknown")
        assert time.monotonic() - started < 0.2 + 0.3
        printer.close()


def test_nothing_listening_raises_printer_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed on exit: nothing listens there
    printer = EscPosPrinter("127.0.0.1", port, timeout=TIMEOUT)
    with pytest.raises(PrinterUnavailable, match=f"127.0.0.1:{port}"):
        printer.print_document(doc("nowhere"))


# -- robustness of the simulated printer -----------------------------------------------


MALFORMED = [
    b"\x1b",  # lone ESC
    b"\x1d",  # lone GS
    b"\x1b!",  # ESC ! without its parameter
    b"\x1bp\x00\x32",  # drawer pulse cut short
    b"\x10\x04",  # status request without n
    b"\x10\x04\x09\x10\x04\x00",  # status requests out of range: ignored
    b"\x1dv0\x00\xff\xff\xff\xff" + b"\x0a" * 100,  # raster image declaring ~4 GB
    b"\x1d(k\xff\xff" + b"\x1b@",  # 2D code block declaring 64 KB
    b"\x1dk\x02123",  # barcode without its NUL
    b"\x1b&\x03\x20\x7e\x0c",  # user-defined characters cut short
    b"\xff\xfe\x00\x01\x1c\xff\x1b\xff\x1d\xff\x10\xff\x7f" * 50,  # unknown commands
    bytes(range(256)) * 4 + b"\x1dV\x00",  # every byte value, then a cut
    b"\x1dV",  # cut without mode
]


def test_malformed_and_truncated_bytes_do_not_stop_the_printer(
    mock: MockNetworkPrinter, driver: EscPosPrinter
) -> None:
    for chunk in MALFORMED:
        with socket.create_connection(("127.0.0.1", mock.port), timeout=WAIT) as sock:
            sock.sendall(chunk)
    with socket.create_connection(("127.0.0.1", mock.port), timeout=WAIT) as sock:
        for chunk in MALFORMED:  # all on one connection as well
            sock.sendall(chunk)
    mock.wait_for_raw(2 * len(b"".join(MALFORMED)), WAIT)
    cut_so_far = len(mock.receipts)
    driver.print_document(doc("still printing"))
    assert mock.wait_for_receipts(cut_so_far + 1, WAIT)[-1] == "still printing"
    assert driver.status() == PrinterStatus(online=True, paper="ok")


def _merged(events: list[Event]) -> list[Event]:
    """Join adjacent Text events: how a stream is chunked may split text."""
    merged: list[Event] = []
    for event in events:
        if isinstance(event, Text) and merged and isinstance(merged[-1], Text):
            merged[-1] = Text(merged[-1].text + event.text)
        else:
            merged.append(event)
    return merged


def _parse(data: bytes, chunk_sizes: Iterator[int] | None = None) -> list[Event]:
    parser = EscPosParser()
    events: list[Event] = []
    at = 0
    while at < len(data):
        size = next(chunk_sizes) if chunk_sizes else len(data)
        events += parser.feed(data[at : at + size])
        at += size
    return _merged(events)


def test_parser_skips_binary_parameters_split_anywhere() -> None:
    rng = random.Random(1)
    image = Image.frombytes("1", (64, 32), bytes(rng.getrandbits(8) for _ in range(256)))
    job = Dummy()
    job.textln("before")
    job.image(image, impl="bitImageRaster")
    job.image(image, impl="graphics")
    job.image(image, impl="bitImageColumn")
    job.qr("\n\x1b\x1dV" * 10)
    job.barcode("4006381333931", "EAN13", function_type="A")
    job.barcode("4006381333931", "EAN13", function_type="B")
    job._raw(b"\x1d8L" + (12).to_bytes(4, "little") + b"\x30\x70\x0a\x1b@\x0a\x1dV\x00" + b"\x0a" * 5)
    job.textln("after")
    job.cut()
    job.cashdraw(2)
    data = job.output
    assert b"\x0a" in data[10:-20] and b"\x1d" in data[10:-20]  # binary data that looks like commands

    whole = _parse(data)
    assert [e for e in whole if isinstance(e, Text)] == [Text("before"), Text("after")]
    assert whole[-2:] == [Cut(), DrawerPulse(pin=2, realtime=False)]
    assert _parse(data, iter(lambda: 1, None)) == whole
    assert _parse(data, iter(lambda: rng.randint(1, 40), None)) == whole


def test_parser_survives_random_bytes_split_anywhere() -> None:
    rng = random.Random(7)
    alphabet = b"\x1b\x1d\x1c\x10\x04\x00\x0a@!pVvk(8*&aE" + bytes(range(0x20, 0x30))
    for _ in range(300):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 200)))
        whole = _parse(data)
        assert _parse(data, iter(lambda: rng.randint(1, 7), None)) == whole


def test_feed_event_counts_lines() -> None:
    assert _parse(b"a\nb\x1bd\x03") == [Text("a"), Feed(1), Text("b"), Feed(3)]


# -- text that must never become a command ---------------------------------------------------

SOLD_AT = datetime(2026, 12, 1, 22, 40)
HOSTILE = "x\u001bp0\u0019\u0019\u001dV0y"  # ESC p 0 (drawer pulse), then GS V 0 (cut)


def _sale(text: str) -> dict[str, Any]:
    """A sale.completed print job whose every text field is `text`."""
    eur = {"minor": 150, "currency": "EUR"}
    return {"id": text, "seq": 7, "body": {
        "till": text, "session": text, "cashier": text, "currency": "EUR", "total": eur, "change": eur,
        "lines": [{"sku": text, "name": text, "quantity": 1, "unit_price": eur, "amount": eur}],
        "tenders": [{"method": text, "amount": eur}],
    }}


def _commands(raw: bytes) -> bytes:
    """The control bytes of a job in order: what the printer obeys rather than prints."""
    return bytes(byte for byte in raw if byte < 0x20 or byte == 0x7F)


def _printed(document: PrintDocument) -> tuple[str, bytes]:
    """What a fresh printer prints for `document`, and the bytes it received."""
    with MockNetworkPrinter() as mock, EscPosPrinter("127.0.0.1", mock.port, timeout=TIMEOUT) as driver:
        driver.print_document(document)
        return mock.wait_for_receipts(1, WAIT)[0], mock.raw


def test_hostile_text_in_every_receipt_field_prints_as_text(mock: MockNetworkPrinter, driver: EscPosPrinter) -> None:
    driver.print_document(render_receipt(ReceiptContext(ReceiptSettings(HOSTILE)), _sale(HOSTILE), SOLD_AT))
    hostile = mock.wait_for_receipts(1, WAIT)[0]
    hostile_raw = mock.raw
    events = _parse(hostile_raw)
    assert [event for event in events if isinstance(event, DrawerPulse)] == []
    assert [event for event in events if isinstance(event, Cut)] == [Cut()]  # the receipt's own
    assert "x?p0???V0y" in hostile  # shown, so a tampered name is seen, not obeyed
    plain_receipt, plain_raw = _printed(render_receipt(ReceiptContext(ReceiptSettings("x?p0???V0y")), _sale("x?p0???V0y"), SOLD_AT))
    assert plain_receipt == hostile
    assert _commands(hostile_raw) == _commands(plain_raw)  # not one command more


@pytest.mark.parametrize("text", [
    "".join(map(chr, range(0x00, 0x20))) + "\x7f" + "".join(map(chr, range(0x80, 0xA0))),  # C0, DEL, C1
    "a\ud800b\udfffc",  # lone surrogates
    "line\u2028separator\u2029paragraph\u0085next",
    "\u202eevil\u202c\u200b\ufeff",  # bidi override, zero width
    "€ ½ Ünïcödé 日本 \U0001f600",
], ids=["C0-DEL-C1", "lone-surrogates", "separators", "format-characters", "beyond-the-code-page"])
def test_any_text_reaches_the_printer_as_printable_bytes(
        mock: MockNetworkPrinter, driver: EscPosPrinter, text: str) -> None:
    driver.print_document(doc("start", text, "end"))
    receipt = mock.wait_for_receipts(1, WAIT)[0]
    assert receipt.startswith("start\n") and receipt.endswith("\nend") and receipt.count("\n") == 2
    assert _commands(mock.raw) == _commands(_printed(doc("start", "plain", "end"))[1])
