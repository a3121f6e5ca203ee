"""A simulated serial device on a real pseudo-terminal.

The driver under test opens the pty's slave through pyserial exactly as it
would open /dev/ttyUSB0; the simulated device reads and writes the master.
The slave is reached through a symlink at a path the caller chooses (e.g.
`<state>/dev/scanner-1 -> /dev/pts/7`), because the store config names ports
by path and a device must keep its identity across a replug, while Linux
hands out /dev/pts numbers afresh (and reuses them) on every plug.

Unplugging removes the symlink and closes the master: the kernel hangs the
slave up, so an open driver sees the port fail on its next read or write,
as with a USB-serial adapter pulled out. What the device sent but the
driver had not read yet is lost, as it would be.

The device keeps its own slave descriptor open while plugged: that keeps
the master readable between driver sessions (with no slave open, reading
the master fails with EIO) and lets it put the line in raw mode before any
driver opens it, so bytes pass unchanged and nothing is echoed.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)

_WRITE_TIMEOUT = 1.0  # how long write() waits for room in the pty before dropping bytes
_JOIN_TIMEOUT = 5.0


class PtySerialDevice:
    """Base for simulated serial devices: subclasses answer in `on_bytes`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """path is where the port appears (a symlink); it is created on plug()."""
        self.path = Path(path)
        self._port_lock = threading.Lock()  # guards the descriptors below against unplug
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r: int | None = None  # wakes the reader thread to stop it
        self._wake_w: int | None = None
        self._reader: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        """True while the port exists at `path`."""
        return self._master is not None

    def plug(self) -> Self:
        """Open a fresh pty and point `path` at its slave; returns self."""
        with self._port_lock:
            if self._master is not None:
                raise RuntimeError(f"{self.path} is already plugged")
            master, slave = os.openpty()
            wake_r, wake_w = os.pipe()
            try:
                tty.setraw(slave)
                os.set_blocking(master, False)
                self.path.parent.mkdir(parents=True, exist_ok=True)
                staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.plugging")
                staging.unlink(missing_ok=True)
                os.symlink(os.ttyname(slave), staging)
                os.replace(staging, self.path)  # atomic: the path never names a half-made port
            except BaseException:
                for fd in (master, slave, wake_r, wake_w):
                    os.close(fd)
                raise
            self._master, self._slave, self._wake_r, self._wake_w = master, slave, wake_r, wake_w
            self._reader = threading.Thread(
                target=self._read_loop, args=(master, wake_r), name=f"pty:{self.path.name}", daemon=True
            )
            self._reader.start()
        return self

    def unplug(self) -> None:
        """Remove the port: drivers holding it open get errors from then on.

        Not to be called from on_bytes (it waits for the reader thread).
        """
        with self._port_lock:
            if self._master is None:
                raise RuntimeError(f"{self.path} is not plugged")
            master, slave, wake_r, wake_w = self._master, self._slave, self._wake_r, self._wake_w
            reader = self._reader
            self._master = self._slave = self._wake_r = self._wake_w = None
            self._reader = None
            if slave is not None and self.path.is_symlink() and os.readlink(self.path) == os.ttyname(slave):
                self.path.unlink()  # only our own link: the path may have been given to another device
        assert reader is not None and wake_r is not None and wake_w is not None and slave is not None
        os.write(wake_w, b"\0")
        reader.join(_JOIN_TIMEOUT)
        for fd in (master, slave, wake_r, wake_w):
            os.close(fd)
        self.on_unplugged()

    def close(self) -> None:
        """Unplug if plugged; safe to call any number of times."""
        if self.plugged:
            self.unplug()

    def __enter__(self) -> Self:
        if not self.plugged:
            self.plug()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- data --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send bytes to the host; safe from any thread, on_bytes included.

        Bytes sent while unplugged, or that find no room in the pty within a
        second (the host is not reading), are dropped with a log line, as a
        device without flow control would lose them.
        """
        with self._port_lock:
            if self._master is None:
                log.debug("%s: unplugged, dropping %d bytes", self.path, len(data))
                return
            view = memoryview(data)
            deadline = time.monotonic() + _WRITE_TIMEOUT
            while view:
                try:
                    view = view[os.write(self._master, view) :]
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([], [self._master], [], left)[1]:
                        log.warning("%s: host not reading, dropping %d bytes", self.path, len(view))
                        return

    def on_bytes(self, data: bytes) -> None:
        """Bytes the host sent, in order; runs on the reader thread. Override."""

    def on_unplugged(self) -> None:
        """The port was removed; reset per-connection state. Override if needed."""

    # -- the reader thread -------------------------------------------------------

    def _read_loop(self, master: int, wake_r: int) -> None:
        while True:
            ready = select.select([master, wake_r], [], [])[0]
            if wake_r in ready:
                return
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                # EIO only if no slave is open, which our own descriptor prevents.
                log.error("%s: reading the pty failed, device stops: %s", self.path, exc)
                return
            try:
                self.on_bytes(data)
            except Exception:
                # A bug in a simulated device must cost the bytes, never the device.
                log.exception("%s: error handling %d received bytes", self.path, len(data))
