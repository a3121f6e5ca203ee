"""sd_notify against a real AF_UNIX datagram socket, as systemd would listen."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from edge_runtime import Notifier


def drain(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


def test_lifecycle_messages(listener: socket.socket) -> None:
    notifier = Notifier()
    notifier.ready()
    notifier.status("serving 3 tills")
    notifier.stopping()
    assert drain(listener) == ["READY=1", "STATUS=serving 3 tills", "STOPPING=1"]


def test_a_manager_that_does_not_read_never_blocks_the_sender(listener: socket.socket) -> None:
    """A datagram socket queues only a few messages; past that, sending must not wait for room."""
    notifier = Notifier()
    sender = threading.Thread(target=lambda: [notifier.watchdog() for _ in range(200)], daemon=True)
    sender.start()
    sender.join(5)
    blocked = sender.is_alive()
    received = drain(listener)  # frees a blocked sender, if any
    assert not blocked, "sd_notify blocked on a full socket queue"
    assert 0 < len(received) < 200 and set(received) == {"WATCHDOG=1"}


def test_abstract_socket_name(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"edge-runtime-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        Notifier().ready()
        assert drain(sock) == ["READY=1"]


async def test_without_notify_socket_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = Notifier()
    notifier.ready()
    notifier.watchdog()
    with trio.fail_after(0.5):
        await notifier.run_watchdog(lambda: True)  # returns at once: no watchdog configured


async def test_watchdog_pings_only_while_healthy(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000")  # 20 ms: ping every 10 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    healthy = True
    async with trio.open_nursery() as nursery:
        nursery.start_soon(Notifier().run_watchdog, lambda: healthy)
        await trio.sleep(0.1)
        while_healthy = drain(listener)
        healthy = False
        await trio.sleep(0.1)
        while_unhealthy = drain(listener)
        healthy = True
        await trio.sleep(0.2)
        recovered = drain(listener)
        nursery.cancel_scope.cancel()
    assert set(while_healthy) == {"WATCHDOG=1"} and 3 <= len(while_healthy) <= 12
    assert while_unhealthy == []
    assert recovered


async def test_watchdog_meant_for_another_process_is_ignored(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    with trio.fail_after(0.5):
        await Notifier().run_watchdog(lambda: True)
    assert drain(listener) == []


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    Notifier().ready()
    assert "sd_notify failed" in caplog.text
