"""Talking to systemd's service manager (`Type=notify`, `WatchdogSec=`) without libsystemd.

The protocol is one datagram of `KEY=VALUE` lines to the unix socket named by $NOTIFY_SOCKET
(a leading '@' means Linux's abstract namespace). Outside systemd the variable is unset and
every call does nothing, so the same binary runs in a terminal, in tests and under systemd.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

import trio

logger = logging.getLogger(__name__)


class Notifier:
    """sd_notify: READY, STATUS, STOPPING and WATCHDOG messages for the service manager."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = os.environ.get("WATCHDOG_USEC")
        watchdog_pid = os.environ.get("WATCHDOG_PID")
        for_us = watchdog_pid is None or watchdog_pid == str(os.getpid())  # not inherited from a parent
        self._watchdog_interval = int(watchdog_usec) / 2e6 if watchdog_usec and for_us else None

    def ready(self) -> None:
        """Startup finished: systemd considers the unit started (and starts what depends on it)."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """A one-line status shown by `systemctl status`."""
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        """Shutdown has begun."""
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        """Still alive: resets the watchdog timer. Missing it for WatchdogSec gets us killed."""
        self._send("WATCHDOG=1")

    async def run_watchdog(self, healthy: Callable[[], bool]) -> None:
        """Ping the watchdog every WATCHDOG_USEC/2 while `healthy()`; return at once without a watchdog.

        An unhealthy process just stops pinging: systemd then kills and restarts it. A hung
        trio loop stops pinging too, which is the point of pinging from the loop.
        """
        if self._watchdog_interval is None:
            return
        while True:
            if healthy():
                self.watchdog()
            await trio.sleep(self._watchdog_interval)

    def _send(self, message: str) -> None:
        """Never blocks: it runs on the trio thread, and a full queue at a manager that is not
        reading would otherwise stall the whole loop. The message is dropped with a warning."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            logger.warning("sd_notify failed message=%s socket=%r error=%r", message, self._address, exc)
