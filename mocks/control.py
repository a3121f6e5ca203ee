"""A control socket for simulated hardware: one JSON line in (the command's words), one JSON line out.

`novapos demo` serves it beside its simulated devices; `novapos mock ...` is its client, so a person
can plug, unplug and scan from another terminal while the demo runs.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[list[str]], str]


class CommandError(Exception):
    """A command that cannot be carried out; the message goes back to the person who typed it."""


class ControlServer:
    def __init__(self, socket_path: Path, handle: Handler) -> None:
        self.socket_path = socket_path
        self._handle = handle
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ControlServer:
        handle = self._handle

        class Connection(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    words = json.loads(self.rfile.readline(64 * 1024))
                    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
                        raise CommandError("send a JSON list of words")
                    reply = {"ok": True, "message": handle(words)}
                except (CommandError, ValueError) as exc:
                    reply = {"ok": False, "message": str(exc)}
                self.wfile.write(json.dumps(reply).encode() + b"\n")

        self.socket_path.unlink(missing_ok=True)
        self._server = socketserver.ThreadingUnixStreamServer(str(self.socket_path), Connection)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="mock-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.socket_path.unlink(missing_ok=True)


def send_command(socket_path: Path, words: list[str], timeout: float = 10.0) -> tuple[bool, str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(socket_path))
        connection.sendall(json.dumps(words).encode() + b"\n")
        reply = json.loads(connection.makefile("rb").readline())
    return bool(reply["ok"]), str(reply["message"])
