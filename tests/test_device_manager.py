"""The device manager on its own: a device actor whose start outlasts the manager's wait.

No store around it: a `hardware` supervisor holding the `devices` supervisor and the manager, as the
edge wires them, and one serial drawer whose driver blocks on a gate the test opens.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.devices.context import MANAGER, SUPERVISOR, DeviceContext
from actors.devices.manager import DeviceManagerActor
from drivers.cash_drawer import SerialCashDrawer
from drivers.hid_backend import RealHidBackend
from edge_runtime import ChildSpec, Strategy, SupervisorSpec, Tree, supervision_tree
from novapos.config import DeviceRule, DevicesConfig
from tests.conftest import wait_until

START_WAIT = 0.3  # the manager's wait for a device actor's start, well below the blocked open


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Opening the drawer (its first sensor read) blocks until the gate opens."""
    opened = threading.Event()

    def blocked_is_open(self: SerialCashDrawer) -> bool:
        assert opened.wait(30), "the test never opened the gate"
        return False
    monkeypatch.setattr(SerialCashDrawer, "is_open", blocked_is_open)
    yield opened
    opened.set()  # never leave an actor thread blocked behind a failed test


def hardware(devices: DevicesConfig, start_wait: float) -> SupervisorSpec:
    """The edge's hardware branch (see edge.app.edge_tree), with the manager's start wait shortened."""
    context = DeviceContext(RealHidBackend(), lambda _event: None)
    return SupervisorSpec("hardware", strategy=Strategy.REST_FOR_ONE, children=[
        SupervisorSpec(SUPERVISOR, strategy=Strategy.ONE_FOR_ONE, intensity=20, period=10.0, children=[]),
        ChildSpec(MANAGER, DeviceManagerActor, (devices, context), {"start_wait": start_wait}),
    ])


@pytest.fixture
async def tree(tmp_path: Path) -> AsyncIterator[Tree]:
    port = tmp_path / "ttyDRAWER"
    port.touch()  # a configured serial path counts as plugged while it exists
    devices = DevicesConfig(rules=(DeviceRule(name="drawer-1", driver="serial-drawer", path=str(port)),),
                            scan_interval=0.05)
    async with supervision_tree(hardware(devices, START_WAIT)) as running:
        yield running


async def drawer_status(tree: Tree) -> dict[str, Any]:
    statuses = await tree.ask(MANAGER, "statuses")
    return next(s for s in statuses if s["device"] == "drawer-1")


async def test_a_device_whose_start_times_out_is_retried_and_comes_up_without_crashing_the_manager(
        tree: Tree, gate: threading.Event) -> None:
    manager = tree.registry.get(MANAGER)

    async def gave_up() -> dict[str, Any] | None:
        status = await drawer_status(tree)
        return status if status["state"] == "down" and "could not start" in status["detail"] else None
    given_up = await wait_until(gave_up, timeout=10)
    assert "retrying" in given_up["detail"]
    assert tree.registry.get(MANAGER) is manager and tree.restarts == 0, "the clean-up crashed the manager"

    gate.set()  # the driver unblocks: a later scan brings the drawer up

    async def up() -> dict[str, Any] | None:
        status = await drawer_status(tree)
        return status if status["state"] == "closed" else None
    await wait_until(up, timeout=15)
    assert await tree.ask(SUPERVISOR, "which_children") == [("device.drawer-1", True)]
    assert tree.registry.get(MANAGER) is manager and tree.restarts == 0
    assert tree.healthy()
