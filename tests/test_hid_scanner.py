"""USB HID barcode scanners: report decoding, the driver over a simulated bus (in process and over a
unix socket), hot-plug, malformed data, and the real hidapi backend on this machine."""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from drivers.barcode_scanner import MAX_BARCODE_LENGTH
from drivers.errors import DeviceGone
from drivers.hid_backend import HidBackend, HidDeviceInfo, HidHandle, RealHidBackend
from drivers.hid_scanner import HidScanner, KeyboardWedgeDecoder, PosReportAssembler, decode_pos_report
from drivers.hid_socket import HidSocketBackend
from edge.app import hid_backend
from mocks.hid_bus import HidBusServer, SimulatedHidBus, keyboard_reports, pos_reports
from novapos.config import ConfigError, load_devices
from tests.leaks import new_threads

POS = b"sim-pos-0"
KBD = b"sim-kbd-0"
EAN = "4006381333931"


# --- helpers ----------------------------------------------------------------------------------------


def pos(data: bytes, *, more: bool = False, aim: bytes = b"]E0", report_id: int = 0x02, length: int | None = None) -> bytes:
    """A HID POS scanned data report built by hand from the documented layout."""
    report = bytearray(64)
    report[0] = report_id
    report[1] = len(data) if length is None else length
    report[2:2 + len(data)] = data
    report[58:61] = aim
    report[61] = 0x64
    report[63] = 0x01 if more else 0x00
    return bytes(report)


def key(*codes: int, mods: int = 0) -> bytes:
    return bytes([mods, 0, *codes] + [0] * (6 - len(codes)))


UP = bytes(8)
SHIFT = 0x02
RSHIFT = 0x20


def type_keys(decoder: KeyboardWedgeDecoder, reports: list[bytes]) -> list[str]:
    out: list[str] = []
    for report in reports:
        out.extend(decoder.feed(report))
    return out


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = new_threads(before)
    if leaked:
        pytest.fail(f"leaked threads: {leaked}")


@pytest.fixture
def bus() -> SimulatedHidBus:
    bus = SimulatedHidBus()
    bus.add_device(POS, 0x0C2E, 0x0B61, "POS-SN-1", "Scanner POS", "pos")
    bus.add_device(KBD, 0x05E0, 0x1200, "KBD-SN-1", "Scanner wedge", "keyboard")
    return bus


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    # sun_path is limited to 108 bytes; pytest's tmp_path can get long.
    path = tmp_path / "hid.sock"
    if len(str(path)) > 100:
        pytest.skip("tmp_path too long for a unix socket")
    return path


# --- HID POS decoding -------------------------------------------------------------------------------


def test_pos_single_report() -> None:
    assert decode_pos_report(pos(EAN.encode())) == EAN
    assert PosReportAssembler().feed(pos(EAN.encode())) == EAN


def test_pos_multi_report_barcode() -> None:
    data = "".join(chr(ord("A") + i % 26) for i in range(120))
    reports = [pos(data[:56].encode(), more=True), pos(data[56:112].encode(), more=True), pos(data[112:].encode())]
    assembler = PosReportAssembler()
    assert assembler.feed(reports[0]) is None and assembler.pending
    assert assembler.feed(reports[1]) is None
    assert assembler.feed(reports[2]) == data
    assert not assembler.pending
    assert decode_pos_report(reports[0]) is None  # only part of a barcode
    assert pos_reports(data) == reports  # the simulator sends exactly this


def test_pos_symbology_and_suffix_ignored() -> None:
    for aim in (b"]E0", b"]C1", b"]Q1", b"\0\0\0"):
        assert decode_pos_report(pos(b"ABC-123", aim=aim)) == "ABC-123"
    assert decode_pos_report(pos(b"12345\r\n")) == "12345"
    assert decode_pos_report(pos("Zürich".encode())) == "Zürich"


def test_pos_truncated_and_malformed_reports_discarded(caplog: pytest.LogCaptureFixture) -> None:
    good = pos(b"12345")
    assert decode_pos_report(good[:30]) is None
    assert decode_pos_report(pos(b"12345", length=57)) is None
    assert decode_pos_report(pos(b"12345", report_id=0x03)) is None
    assert decode_pos_report(b"") is None
    assembler = PosReportAssembler()
    with caplog.at_level(logging.WARNING, logger="drivers.hid_scanner"):
        assert assembler.feed(pos(b"A" * 56, more=True)) is None
        assert assembler.feed(good[:40]) is None  # truncated mid-barcode: the partial barcode goes too
        assert not assembler.pending
        assert assembler.feed(good) == "12345"
    assert assembler.discarded == 1
    assert "truncated" in caplog.text


def test_pos_barcode_over_128_chars_discarded() -> None:
    assembler = PosReportAssembler()
    reports = pos_reports("9" * (MAX_BARCODE_LENGTH + 1))
    assert [assembler.feed(r) for r in reports] == [None] * len(reports)
    assert assembler.discarded == 1
    assert [assembler.feed(r) for r in pos_reports("9" * MAX_BARCODE_LENGTH)][-1] == "9" * MAX_BARCODE_LENGTH
    endless = PosReportAssembler()  # a device that never clears "continued" cannot grow memory
    for _ in range(1000):
        endless.feed(pos(b"x" * 56, more=True))
    assert endless.feed(pos(b"end")) is None and endless.discarded == 1


# --- keyboard decoding ------------------------------------------------------------------------------


def test_keyboard_digits() -> None:
    # 1..9 are 0x1E..0x26, 0 is 0x27, Enter 0x28
    reports = []
    for code in (0x1E, 0x1F, 0x20, 0x27, 0x26):
        reports += [key(code), UP]
    reports += [key(0x28), UP]
    assert type_keys(KeyboardWedgeDecoder(), reports) == ["12309"]


def test_keyboard_letters_with_shift_and_symbols() -> None:
    reports = [key(0x0B, mods=SHIFT), UP, key(0x08), UP,  # H e
               key(0x0F, mods=RSHIFT), UP,  # L with right shift
               key(0x2D), UP, key(0x2D, mods=SHIFT), UP,  # - _
               key(0x1E, mods=SHIFT), UP, key(0x38), UP,  # ! /
               key(mods=SHIFT), key(0x04, mods=SHIFT), key(mods=SHIFT), UP,  # shift pressed before the key: A
               key(0x28), UP]
    assert type_keys(KeyboardWedgeDecoder(), reports) == ["HeL-_!/A"]


def test_keyboard_key_up_and_repeated_keys() -> None:
    decoder = KeyboardWedgeDecoder()
    # "11": press, release, press, release; a key held over several reports counts once
    reports = [key(0x1E), UP, key(0x1E), key(0x1E), key(0x1E), UP, UP, UP,
               key(0x1F), key(0x1F, 0x20), key(0x20), UP,  # 2 held while 3 pressed: "23"
               key(0x28), key(0x28), UP]
    assert type_keys(decoder, reports) == ["1123"]
    assert type_keys(decoder, [key(0x28), UP]) == []  # Enter alone: no empty barcode
    assert type_keys(decoder, [key(0x1E), UP, key(0x28), UP, key(0x1F), UP, key(0x28), UP]) == ["1", "2"]


def test_keyboard_unknown_keys_modifiers_rollover_and_tab() -> None:
    decoder = KeyboardWedgeDecoder()
    reports = [key(0x1E), UP, key(0x3A), UP,  # F1: unknown, ignored
               key(0x1F), key(0x1F, 0xE5), UP,  # a modifier usage in the key array: ignored
               key(0x01, 0x01, 0x01, 0x01, 0x01, 0x01), UP,  # ErrorRollOver: phantom, ignored
               key(0x06, mods=0x01), UP,  # ctrl+c: not text
               key(0x2B), UP,  # Tab ignored by default
               key(0x20), UP, key(0x58), UP]  # keypad Enter ends
    assert type_keys(decoder, reports) == ["123"]
    tabbed = KeyboardWedgeDecoder(tab_ends_barcode=True)
    assert type_keys(tabbed, [key(0x1E), UP, key(0x2B), UP]) == ["1"]


def test_keyboard_junk_never_raises() -> None:
    decoder = KeyboardWedgeDecoder()
    for junk in (b"", b"\x00", b"\xff" * 7, b"\xff" * 64, bytes(range(8)), b"\xff" * 8):
        assert decoder.feed(junk) == []
    assert decoder.discarded == 4  # the wrong lengths
    decoder.reset()
    assert type_keys(decoder, keyboard_reports("Ok-42")) == ["Ok-42"]
    # 9 bytes: a report id first
    assert type_keys(decoder, [b"\x01" + key(0x1E), b"\x01" + UP, b"\x01" + key(0x28)]) == ["1"]


def test_keyboard_barcode_over_128_chars_discarded() -> None:
    decoder = KeyboardWedgeDecoder()
    assert type_keys(decoder, keyboard_reports("7" * (MAX_BARCODE_LENGTH + 1))) == []
    assert decoder.discarded == 1
    text = "".join(chr(c) for c in range(0x21, 0x7F))  # every printable ASCII character but space
    assert type_keys(decoder, keyboard_reports(text)) == [text]


# --- HidScanner over the simulated bus --------------------------------------------------------------


@pytest.mark.parametrize("path", [POS, KBD])
def test_scanner_reads_barcodes(bus: SimulatedHidBus, path: bytes) -> None:
    with HidScanner(bus, path, "pos" if path == POS else "keyboard") as scanner:
        assert scanner.read_barcodes(0.05) == []
        assert bus.scan(path, EAN) == 1
        assert bus.scan(path, "Abc-" + "x" * 70) == 1
        started = time.monotonic()
        assert scanner.read_barcodes(2.0) == [EAN, "Abc-" + "x" * 70]
        assert time.monotonic() - started < 0.5  # returns once barcodes are in, not at the timeout
    assert bus.open_handles(path) == 0


def test_scanner_returns_a_barcode_scanned_during_the_read(bus: SimulatedHidBus) -> None:
    with HidScanner(bus, KBD, "keyboard") as scanner:
        timer = threading.Timer(0.05, bus.scan, (KBD, "42"))
        timer.start()
        assert scanner.read_barcodes(2.0) == ["42"]
        timer.join()


def test_enumerate_shows_usage_pages(bus: SimulatedHidBus) -> None:
    infos = {info.path: info for info in bus.enumerate()}
    assert infos[POS] == HidDeviceInfo(POS, 0x0C2E, 0x0B61, "POS-SN-1", "NovaPOS simulator", "Scanner POS", 0x8C, 0x02, 0)
    assert (infos[KBD].usage_page, infos[KBD].usage) == (0x01, 0x06)
    assert isinstance(bus, HidBackend)


def unplug_while_reading(bus: SimulatedHidBus, scanner: HidScanner) -> None:
    """Unplug POS 0.1 s into a 3 s read: the read must end with DeviceGone, not run out its timeout."""
    timer = threading.Timer(0.1, bus.remove_device, (POS,))
    timer.start()
    started = time.monotonic()
    with pytest.raises(DeviceGone):
        scanner.read_barcodes(3.0)
    assert time.monotonic() - started < 2.5
    timer.join()


def test_unplug_mid_read_raises_device_gone_then_replug_works(bus: SimulatedHidBus) -> None:
    scanner = HidScanner(bus, POS, "pos")
    scanner.open()
    unplug_while_reading(bus, scanner)
    assert not scanner.is_open
    assert POS not in [info.path for info in bus.enumerate()]
    with pytest.raises(DeviceGone):
        scanner.open()  # still unplugged
    with pytest.raises(DeviceGone):
        scanner.read_barcodes(0.01)
    bus.add_device(POS, 0x0C2E, 0x0B61, "POS-SN-1", "Scanner POS", "pos")
    scanner.open()
    bus.scan(POS, EAN)
    assert scanner.read_barcodes(1.0) == [EAN]
    scanner.close()


def test_partial_barcode_is_not_completed_by_the_next_device_generation(bus: SimulatedHidBus) -> None:
    scanner = HidScanner(bus, KBD, "keyboard")
    scanner.open()
    for report in keyboard_reports("123")[:4]:  # "12" then unplugged
        bus.send_raw(KBD, report)
    assert scanner.read_barcodes(0.05) == []
    bus.remove_device(KBD)
    with pytest.raises(DeviceGone):
        scanner.read_barcodes(0.05)
    bus.add_device(KBD, 0x05E0, 0x1200, "KBD-SN-1", "Scanner wedge", "keyboard")
    scanner.open()
    bus.scan(KBD, "9")
    assert scanner.read_barcodes(1.0) == ["9"]
    scanner.close()


def test_stale_partial_barcode_dropped(bus: SimulatedHidBus) -> None:
    now = [0.0]
    scanner = HidScanner(bus, KBD, "keyboard", clock=lambda: now[0], stale_after=1.0)
    scanner.open()
    for report in keyboard_reports("55")[:2]:
        bus.send_raw(KBD, report)
    now[0] = 0.0
    scanner.read_barcodes(0)
    now[0] = 5.0  # the rest of that scan never came
    bus.scan(KBD, "66")
    assert scanner.read_barcodes(0) == ["66"]
    assert scanner.discarded == 1
    scanner.close()


@pytest.mark.parametrize("path", [POS, KBD])
def test_malformed_reports_never_crash_the_scanner(bus: SimulatedHidBus, path: bytes, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(1234)
    scanner = HidScanner(bus, path, "pos" if path == POS else "keyboard")
    scanner.open()
    with caplog.at_level(logging.WARNING, logger="drivers.hid_scanner"):
        for _ in range(2000):
            bus.send_raw(path, bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 7, 8, 9, 30, 63, 64, 65]))))
        bus.send_raw(path, pos(b"x", length=200))
        bus.send_raw(path, b"")
        while scanner.read_barcodes(0.05):  # whatever the junk happened to spell is of no interest
            pass
    assert scanner.discarded > 0 and "discarded" in caplog.text
    assert len(caplog.records) < 100  # rate limited
    bus.scan(path, "")  # terminates any partial junk barcode in keyboard mode
    scanner.read_barcodes(0.05)
    bus.scan(path, EAN)
    assert scanner.read_barcodes(1.0) == [EAN]
    scanner.close()


class _Chatterbox:
    """A device that never stops sending: a key press/release pair, for ever."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: int, timeout_ms: int) -> bytes:
        self.reads += 1
        return key(0x1E) if self.reads % 2 else UP

    def close(self) -> None:
        pass


def test_a_device_that_never_stops_cannot_hold_the_reader() -> None:
    chatterbox = _Chatterbox()
    backend = types.SimpleNamespace(open=lambda path: chatterbox, enumerate=lambda: [])
    scanner = HidScanner(backend, b"x", "keyboard")  # type: ignore[arg-type]
    scanner.open()
    started = time.monotonic()
    assert scanner.read_barcodes(0.05) == []
    assert time.monotonic() - started < 1.0
    assert chatterbox.reads > HidScanner.MAX_DRAIN


def test_scanner_rejects_unknown_mode(bus: SimulatedHidBus) -> None:
    with pytest.raises(ValueError):
        HidScanner(bus, POS, "serial")  # type: ignore[arg-type]


# --- over a unix socket -----------------------------------------------------------------------------


def test_the_hid_backend_setting_names_the_socket_and_the_edge_reads_the_bus_there(
        bus: SimulatedHidBus, sock_path: Path) -> None:
    devices = load_devices({"hid_backend": f"socket:{sock_path}"}, "store.toml", ())
    with HidBusServer(bus, sock_path):
        backend = hid_backend(devices.hid_backend)
        assert isinstance(backend, HidSocketBackend) and backend.socket_path == sock_path
        assert {info.path for info in backend.enumerate()} == {POS, KBD}
    assert isinstance(hid_backend(load_devices({}, "store.toml", ()).hid_backend), RealHidBackend)


@pytest.mark.parametrize("setting", ["socket:", "socket:  ", "simulated:/run/hid.sock", "libusb", 7, "socket:/a\x00b"])
def test_a_hid_backend_setting_that_names_no_bus_is_refused(setting: object) -> None:
    with pytest.raises(ConfigError, match="hid_backend"):
        load_devices({"hid_backend": setting}, "store.toml", ())


def test_server_client_scan_unplug_replug(bus: SimulatedHidBus, sock_path: Path) -> None:
    with HidBusServer(bus, sock_path):
        client = HidSocketBackend(sock_path)
        assert isinstance(client, HidBackend)
        assert sorted(client.enumerate(), key=lambda i: i.path) == sorted(bus.enumerate(), key=lambda i: i.path)
        pos_scanner, kbd_scanner = HidScanner(client, POS, "pos"), HidScanner(client, KBD, "keyboard")
        pos_scanner.open()
        kbd_scanner.open()
        bus.scan(POS, "P-" + "1" * 100)
        bus.scan(KBD, "K-Test")
        assert pos_scanner.read_barcodes(1.0) == ["P-" + "1" * 100]
        assert kbd_scanner.read_barcodes(1.0) == ["K-Test"]
        assert kbd_scanner.read_barcodes(0.05) == []
        unplug_while_reading(bus, pos_scanner)
        assert [i.path for i in client.enumerate()] == [KBD]
        with pytest.raises(DeviceGone):
            client.open(POS)
        bus.add_device(POS, 0x0C2E, 0x0B61, "POS-SN-1", "Scanner POS", "pos")
        pos_scanner.open()
        bus.scan(POS, EAN)
        assert pos_scanner.read_barcodes(1.0) == [EAN]
        pos_scanner.close()
        kbd_scanner.close()
        deadline = time.monotonic() + 1
        while bus.open_handles(KBD) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bus.open_handles(KBD) == 0


def test_server_stopped_means_empty_bus_and_device_gone(bus: SimulatedHidBus, sock_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    server = HidBusServer(bus, sock_path).start()
    client = HidSocketBackend(sock_path)
    scanner = HidScanner(client, POS, "pos")
    scanner.open()
    reader_error: list[BaseException] = []

    def read() -> None:
        try:
            scanner.read_barcodes(3.0)
        except BaseException as exc:
            reader_error.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.1)
    started = time.monotonic()
    server.stop()
    reader.join(2)
    assert not reader.is_alive() and time.monotonic() - started < 1.5
    assert len(reader_error) == 1 and isinstance(reader_error[0], DeviceGone)
    with caplog.at_level(logging.WARNING, logger="drivers.hid_socket"):
        assert client.enumerate() == []
        assert client.enumerate() == []
    assert sum("unreachable" in r.message for r in caplog.records if r.levelno >= logging.WARNING) == 1
    with pytest.raises(DeviceGone):
        scanner.open()
    # the server comes back on the same path
    with HidBusServer(bus, sock_path):
        assert len(client.enumerate()) == 2
        scanner.open()
        bus.scan(POS, EAN)
        assert scanner.read_barcodes(1.0) == [EAN]
        scanner.close()


def test_client_with_no_server_at_all(tmp_path: Path) -> None:
    client = HidSocketBackend(tmp_path / "nothing.sock")
    assert client.enumerate() == []
    with pytest.raises(DeviceGone):
        client.open(POS)


def _raw_call(sock: socket.socket, payload: bytes) -> object:
    sock.sendall(struct.pack(">I", len(payload)) + payload)
    (length,) = struct.unpack(">I", _recv(sock, 4))
    return msgpack.unpackb(_recv(sock, length), raw=False)


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "server closed the connection"
        data += chunk
    return data


def test_server_survives_garbage_and_vanishing_clients(bus: SimulatedHidBus, sock_path: Path) -> None:
    with HidBusServer(bus, sock_path, max_read_ms=300):
        # garbage inside well-formed frames: an error reply, the connection stays usable
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(sock_path))
            for payload in (b"\xc1\xc1", msgpack.packb([1, 2]), msgpack.packb({"op": "fly"}),
                            msgpack.packb({"op": "read", "handle": "x", "size": 8, "timeout_ms": 1}),
                            msgpack.packb({"op": "open", "path": "not-bytes"}),
                            msgpack.packb({"op": "read", "handle": 99, "size": 8, "timeout_ms": 1})):
                reply = _raw_call(sock, payload)
                assert isinstance(reply, dict) and reply["ok"] is False
            assert _raw_call(sock, msgpack.packb({"op": "enumerate"}))["ok"] is True  # type: ignore[index]
        # broken framing: a huge length, then a connection dropped mid-frame, then mid-read
        for junk in (b"\xff\xff\xff\xff" + b"x" * 100, b"\x00\x00\x00\x10abc", b"\x00"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(sock_path))
                sock.sendall(junk)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(sock_path))
            sock.settimeout(2)
            handle = _raw_call(sock, msgpack.packb({"op": "open", "path": POS}, use_bin_type=True))["handle"]  # type: ignore[index]
            request = msgpack.packb({"op": "read", "handle": handle, "size": 64, "timeout_ms": 5000})
            sock.sendall(struct.pack(">I", len(request)) + request)
        # the server still serves
        client = HidSocketBackend(sock_path)
        assert len(client.enumerate()) == 2
        with HidScanner(client, KBD, "keyboard") as scanner:
            bus.scan(KBD, "still-up")
            assert scanner.read_barcodes(1.0) == ["still-up"]
        deadline = time.monotonic() + 2  # the vanished client's handle is closed once its read ends
        while bus.open_handles(POS) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bus.open_handles(POS) == 0


# --- the real hidapi backend ------------------------------------------------------------------------


def test_real_backend_enumerates_this_machine() -> None:
    infos = RealHidBackend().enumerate()
    assert isinstance(infos, list)
    assert all(isinstance(info, HidDeviceInfo) and isinstance(info.path, bytes) for info in infos)
    with pytest.raises(DeviceGone):
        RealHidBackend().open(b"/dev/no-such-hidraw")


def test_real_backend_without_native_library(caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> types.ModuleType:
        raise ImportError("libhidapi-hidraw.so.0: cannot open shared object file")

    backend = RealHidBackend(loader=missing)
    with caplog.at_level(logging.WARNING, logger="drivers.hid_backend"):
        assert backend.enumerate() == []
        assert backend.enumerate() == []
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    with pytest.raises(DeviceGone):
        backend.open(b"x")
    wrong = types.ModuleType("hid")  # the other PyPI "hid" package has no hid.device
    wrong.enumerate = lambda *a: []  # type: ignore[attr-defined]
    assert RealHidBackend(loader=lambda: wrong).enumerate() == []


class _FakeHidapiDevice:
    """Behaves as cython-hidapi's hid.device does: lists of ints, OSError('read error') once unplugged,
    ValueError('not open') after close, and timeout_ms=0 meaning "block forever"."""

    def __init__(self) -> None:
        self.reports = [[0x02, 0x01, 0x41]]
        self.unplugged = False
        self.open = False
        self.timeouts: list[int] = []

    def open_path(self, path: bytes) -> None:
        if path != b"1-4:1.0":
            raise OSError("open failed")
        self.open = True

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        if not self.open:
            raise ValueError("not open")
        if timeout_ms <= 0:
            raise AssertionError("would block forever")
        self.timeouts.append(timeout_ms)
        if self.unplugged:
            raise OSError("read error")
        return self.reports.pop(0)[:max_length] if self.reports else []

    def close(self) -> None:
        self.open = False


def test_real_backend_converts_hidapi_results_and_errors() -> None:
    device = _FakeHidapiDevice()
    fake = types.ModuleType("hid")
    fake.device = lambda: device  # type: ignore[attr-defined]
    fake.enumerate = lambda vid=0, pid=0: [{  # type: ignore[attr-defined]
        "path": b"1-4:1.0", "vendor_id": 0x0C2E, "product_id": 0x0B61, "serial_number": "",
        "release_number": 0x100, "manufacturer_string": "Honeywell", "product_string": "Scanner",
        "usage_page": 0x8C, "usage": 0x02, "interface_number": 0}]
    backend = RealHidBackend(loader=lambda: fake)
    assert backend.enumerate() == [HidDeviceInfo(b"1-4:1.0", 0x0C2E, 0x0B61, None, "Honeywell", "Scanner", 0x8C, 2, 0)]
    with pytest.raises(DeviceGone):
        backend.open(b"elsewhere")
    handle = backend.open(b"1-4:1.0")
    assert isinstance(handle, HidHandle)
    assert handle.read(64, 0) == b"\x02\x01\x41"  # bytes, and 0 never reaches hidapi
    assert handle.read(64, 10) == b""
    assert device.timeouts == [1, 10]
    device.unplugged = True
    with pytest.raises(DeviceGone):
        handle.read(64, 10)
    handle.close()
    handle.close()
    with pytest.raises(DeviceGone):
        handle.read(64, 10)
