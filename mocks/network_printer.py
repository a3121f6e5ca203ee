"""A simulated network (raw TCP, port 9100 style) ESC/POS receipt printer.

Drivers are tested against the wire, not against a fake object: this is a
real TCP server on 127.0.0.1 that parses what it receives, renders receipt
text, records drawer kicks and answers DLE EOT status queries from its
simulated state (`SimulatedPrinter`, shared with the serial printer). It
runs one selector thread of its own, so the code under test may be trio,
asyncio or plain threads.

Simplifications, besides SimulatedPrinter's, each chosen so tests see
failures plainly:
- each connection starts a fresh parser, so a command cut short by a dropped
  connection cannot swallow the next job;
- "offline" is an unplugged printer: open connections are closed, new ones
  refused until it is back online, and text not yet cut is lost.
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import threading
from collections.abc import Callable

from mocks.escpos_parser import EscPosParser
from mocks.escpos_printer import SimulatedPrinter

log = logging.getLogger(__name__)

_CALL_TIMEOUT = 5.0


class MockNetworkPrinter(SimulatedPrinter):
    """Simulated ESC/POS printer on a TCP port; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self.host = host
        self.port = port  # the bound port once started (0 = ephemeral)
        self._online = True
        self._hold_budget: int | None = None  # see hold_after()
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

    @property
    def online(self) -> bool:
        return self._online

    def hold_after(self, n: int) -> None:
        """Take in `n` more bytes, then go silent (process nothing, answer nothing) until set_online(False):
        a printer that lost power in the middle of a job, before its connection is seen to drop."""
        self._call(lambda: setattr(self, "_hold_budget", n))

    def set_online(self, online: bool) -> None:
        """Plug (True) or unplug (False) the printer; returns once applied."""
        if self._thread is None:
            self._online = online
            return
        self._call(lambda: self._apply_online(online))

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
            self._power_loss()
            self._hold_budget = None
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
        if self._hold_budget is not None:
            data, self._hold_budget = data[:self._hold_budget], max(0, self._hold_budget - len(data))
            if not data:
                return
        try:
            reply = self._process(self._connections[sock], data)
            if reply:
                sock.sendall(reply)
        except OSError:  # reset by the client, or it does not read its replies
            self._drop(sock)
        except Exception:
            # A bug here must cost one connection, never the printer.
            log.exception("mock printer: dropping connection after an internal error")
            self._drop(sock)
