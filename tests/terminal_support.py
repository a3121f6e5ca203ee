"""The serial payment terminal's protocol tests share these: the simulated terminal on a real pseudo-terminal,
the driver connected to it, and a wait for a payment's final stage. A test module imports the fixtures by their
functions' names (`mock_fixture`, `driver_fixture`) and asks for them as `mock` and `driver`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.payment_terminal import SerialPaymentTerminal, TerminalStatus
from mocks.payment_terminal import PaymentTerminalMock


@pytest.fixture(name="mock")
def mock_fixture(tmp_path: Path) -> Iterator[PaymentTerminalMock]:
    with PaymentTerminalMock(tmp_path / "terminal", processing_time=0.05) as terminal:
        yield terminal


@pytest.fixture(name="driver")
def driver_fixture(mock: PaymentTerminalMock) -> Iterator[SerialPaymentTerminal]:
    with SerialPaymentTerminal(str(mock.path), response_timeout=0.3) as terminal:
        yield terminal


def settled(driver: SerialPaymentTerminal, reference: str) -> TerminalStatus:
    deadline = time.monotonic() + 2
    while not (status := driver.status(reference)).final and time.monotonic() < deadline:
        time.sleep(0.01)
    return status
