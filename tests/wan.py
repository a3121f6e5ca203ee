"""A WAN link that a test can cut: a TCP relay on a loopback port to a target port, in a thread of its own.
cut() closes every relayed connection and refuses new ones (they are accepted and closed at once, as a dead
router's NAT would leave them); restore() relays again. `delay_s` holds each chunk that long in each
direction (a round trip costs twice that), as a long link would; bench.leaf measures with it."""

from __future__ import annotations

import heapq
import itertools
import selectors
import socket
import threading
import time

from novapos.demo.processes import free_port


class Wan:
    def __init__(self, target_port: int, host: str = "127.0.0.1", delay_s: float = 0.0) -> None:
        self.host, self.target_port, self.delay_s = host, target_port, delay_s
        self._due: list[tuple[float, int, socket.socket, bytes]] = []  # (when, order, to, data): held chunks
        self._order = itertools.count()
        self.port = free_port(host)
        self._listener = socket.create_server((host, self.port))
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._up = True
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="wan", daemon=True)
        self._thread.start()

    @property
    def up(self) -> bool:
        return self._up

    def cut(self) -> None:
        with self._lock:
            self._up = False
            for sock in list(self._pairs):
                self._drop(sock)

    def restore(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self.cut()
        self._stopped = True
        self._thread.join(5)
        self._listener.close()

    def _drop(self, sock: socket.socket) -> None:
        other = self._pairs.pop(sock, None)
        for each in (sock, other):
            if each is None:
                continue
            self._pairs.pop(each, None)
            try:
                self._selector.unregister(each)
            except (KeyError, ValueError):
                pass
            each.close()

    def _run(self) -> None:
        while not self._stopped:
            wait = 0.05 if not self._due else min(0.05, max(0.0, self._due[0][0] - time.monotonic()))
            for key, _ in self._selector.select(wait):
                with self._lock:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept()
                    elif sock in self._pairs:
                        self._relay(sock)
            with self._lock:
                while self._due and self._due[0][0] <= time.monotonic():
                    _, _, to, data = heapq.heappop(self._due)
                    self._send(to, data)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if not self._up:
            client.close()
            return
        try:
            server = socket.create_connection((self.host, self.target_port), timeout=2)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, None)
        self._pairs[client], self._pairs[server] = server, client

    def _relay(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        if self.delay_s:
            heapq.heappush(self._due, (time.monotonic() + self.delay_s, next(self._order), self._pairs[sock], data))
        else:
            self._send(self._pairs[sock], data)

    def _send(self, to: socket.socket, data: bytes) -> None:
        if to not in self._pairs:  # cut meanwhile: the chunk is lost with the connection
            return
        try:
            to.setblocking(True)
            to.sendall(data)
            to.setblocking(False)
        except OSError:
            self._drop(to)
