"""A simulated network (raw TCP, port 9100 style) ESC/POS receipt printer.

Drivers are tested against the wire, not against a fake object: this is a
real TCP server on 127.0.0.1 that parses what it receives, renders receipt
text, records drawer kicks and answers DLE EOT status queries from its
simulated state. It runs one selector thread of its own, so the code under
test may be trio, asyncio or plain threads.

Simplifications, each chosen so tests see failures plainly:
- each connection starts a fresh parser, so a command cut short by a dropped
  connection cannot swallow the next job;
- with the paper out a real printer goes offline and keeps data in its buffer
  until paper is loaded; this one drops it (nothing is printed, cut or kicked
  but real-time commands), so a lost receipt shows;
- "offline" is an unplugged printer: open connections are closed and new ones
  refused until it is back online.
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import threading
from typing import Callable, Literal

from mocks.escpos_parser import Cut, DrawerPulse, EscPosParser, Event, Feed, Init, StatusRequest, Text

log = logging.getLogger(__name__)

PaperState = Literal["ok", "near_end", "out"]

# DLE EOT status bytes: bits 1 and 4 always on, bits 0 and 7 always off.
_FIXED_BITS = 0x12
_OFFLINE = 0x08  # n=1: printer offline
_PAPER_END_STOP = 0x20  # n=2: printing stopped by paper end
_NEAR_END = 0x0C  # n=4: near-end sensor
_PAPER_END = 0x60  # n=4: paper-end sensor
_CALL_TIMEOUT = 5.0


class MockNetworkPrinter:
    """Simulated ESC/POS printer on a TCP port; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port  # the bound port once started (0 = ephemeral)
        self._cond = threading.Condition()  # guards the printer state below
        self._online = True
        self._paper: PaperState = "ok"
        self._line: list[str] = []  # text not yet printed (no LF yet)
        self._printed: list[str] = []  # lines printed since the last cut
        self._receipts: list[str] = []
        self._drawer_kicks: list[int] = []
        self._raw = bytearray()
        # Loop-thread state: only the selector thread touches these.
        self._selector: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._connections: dict[socket.socket, EscPosParser] = {}  # one parser per stream
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r: socket.socket | None = None  # wakes the selector for _call
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> MockNetworkPrinter:
        """Bind the port and start serving in a background thread."""
        if self._thread is not None:
            raise RuntimeError("printer already started")
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._run_calls)
        if self._online:
            self._listen()
        self._thread = threading.Thread(target=self._serve, name=f"mock-printer:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every socket and end the thread; safe to call twice."""
        if self._thread is None or self._stopping:
            return
        self._call(self._shutdown)
        self._thread.join(_CALL_TIMEOUT)

    def __enter__(self) -> MockNetworkPrinter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- controls ------------------------------------------------------------

    def set_online(self, online: bool) -> None:
        """Plug (True) or unplug (False) the printer; returns once applied."""
        if self._thread is None:
            self._online = online
            return
        self._call(lambda: self._apply_online(online))

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

    # -- the selector thread ---------------------------------------------------

    def _call(self, fn: Callable[[], None]) -> None:
        """Run fn on the selector thread and wait for it, re-raising its error."""
        done = threading.Event()
        errors: list[BaseException] = []

        def job() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        assert self._wake_w is not None
        self._calls.put(job)
        self._wake_w.send(b"\0")
        if not done.wait(_CALL_TIMEOUT):
            raise TimeoutError("mock printer thread did not respond")
        if errors:
            raise errors[0]

    def _serve(self) -> None:
        selector, wake_r, wake_w = self._selector, self._wake_r, self._wake_w
        assert selector is not None and wake_r is not None and wake_w is not None
        while not self._stopping:
            for key, _ in selector.select():
                if selector.get_map().get(key.fd) is key:  # not closed earlier in this batch
                    key.data(key.fileobj)
        selector.close()
        wake_r.close()
        wake_w.close()

    def _run_calls(self, sock: socket.socket) -> None:
        sock.recv(4096)
        while not self._calls.empty():
            self._calls.get()()

    def _listen(self) -> None:
        assert self._selector is not None
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Rebinding after set_online(True) must not trip over TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError:
            listener.close()
            raise
        listener.listen()
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, self._accept)

    def _apply_online(self, online: bool) -> None:
        if online and self._listener is None:
            self._listen()
        elif not online:
            self._close_all()
        self._online = online

    def _close_all(self) -> None:
        assert self._selector is not None
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        for sock in list(self._connections):
            self._drop(sock)

    def _shutdown(self) -> None:
        self._close_all()
        self._stopping = True

    def _accept(self, listener: socket.socket) -> None:
        assert self._selector is not None
        try:
            sock, _ = listener.accept()
        except OSError:
            return  # the client gave up before we accepted
        sock.setblocking(False)
        self._connections[sock] = EscPosParser()
        self._selector.register(sock, selectors.EVENT_READ, self._receive)

    def _drop(self, sock: socket.socket) -> None:
        assert self._selector is not None
        self._selector.unregister(sock)
        del self._connections[sock]
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already reset by the peer
        sock.close()

    def _receive(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            reply = self._execute(data, self._connections[sock].feed(data))
            if reply:
                sock.sendall(reply)
        except OSError:  # reset by the client, or it does not read its replies
            self._drop(sock)
        except Exception:
            # A bug here must cost one connection, never the printer.
            log.exception("mock printer: dropping connection after an internal error")
            self._drop(sock)

    # -- the simulated printer -----------------------------------------------

    def _execute(self, data: bytes, events: list[Event]) -> bytes:
        """Record data and apply its events at once; return status replies."""
        reply = bytearray()
        with self._cond:
            self._raw += data
            running = self._paper != "out"  # paper end takes a printer offline
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
            self._cond.notify_all()
        return bytes(reply)

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
        if n == 1:
            return bytes([_FIXED_BITS | (_OFFLINE if out else 0)])
        if n == 2:
            return bytes([_FIXED_BITS | (_PAPER_END_STOP if out else 0)])
        if n == 3:
            return bytes([_FIXED_BITS])
        if n == 4:
            sensors = {"ok": 0, "near_end": _NEAR_END, "out": _NEAR_END | _PAPER_END}
            return bytes([_FIXED_BITS | sensors[self._paper]])
        return b""
