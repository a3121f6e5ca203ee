"""The device manager on its own: drivers it learns from the registry, starts that outlast its wait.

No store around it: a `hardware` supervisor holding the `devices` supervisor and the manager, as the
edge wires them, and one drawer on a serial path that exists while the test wants it plugged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from actors.devices.context import MANAGER, SUPERVISOR, DeviceContext, device_actor_name
from actors.devices.manager import DeviceManagerActor
from drivers.cash_drawer import SerialCashDrawer
from drivers.errors import DeviceGone
from drivers.hid_backend import RealHidBackend
from drivers.registry import BUSES, DriverSpec, Target, driver_names, driver_spec, register, unregister
from edge_runtime import ChildSpec, Strategy, SupervisorSpec, Tree, supervision_tree
from novapos.config import ConfigError, DeviceRule, DevicesConfig, load_devices
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
def port(tmp_path: Path) -> Path:
    port = tmp_path / "ttyDRAWER"
    port.touch()  # a configured serial path counts as plugged while it exists
    return port


@pytest.fixture
async def tree(port: Path) -> AsyncIterator[Tree]:
    devices = DevicesConfig(rules=(DeviceRule(name="drawer-1", driver="serial-drawer", path=str(port)),),
                            scan_interval=0.05)
    async with supervision_tree(hardware(devices, START_WAIT)) as running:
        yield running


async def drawer_status(tree: Tree) -> dict[str, Any]:
    statuses = await tree.ask(MANAGER, "statuses")
    return next(s for s in statuses if s["device"] == "drawer-1")


def device_up(device: str, kind: str) -> float | None:
    return REGISTRY.get_sample_value("novapos_edge_device_up", {"device": device, "kind": kind})


async def test_a_configured_device_never_plugged_is_down_from_the_start(tmp_path: Path) -> None:
    """NovaPosDeviceDown needs a 0 for a device that never came: no series at all would never alert."""
    devices = DevicesConfig(rules=(DeviceRule(name="drawer-never", driver="serial-drawer",
                                              path=str(tmp_path / "ttyNOTHING")),), scan_interval=0.05)
    async with supervision_tree(hardware(devices, START_WAIT)) as tree:
        async def scanned() -> bool:
            return (await tree.ask(MANAGER, "statuses"))[0]["detail"] == "not seen yet"
        await wait_until(scanned, timeout=10)
        assert device_up("drawer-never", "drawer") == 0


async def test_a_device_whose_start_times_out_is_retried_and_comes_up_without_crashing_the_manager(
        tree: Tree, gate: threading.Event) -> None:
    manager = tree.registry.get(MANAGER)

    async def gave_up() -> dict[str, Any] | None:
        status = await drawer_status(tree)
        return status if status["state"] == "down" and "could not start" in status["detail"] else None
    given_up = await wait_until(gave_up, timeout=10)
    assert "retrying" in given_up["detail"]
    assert device_up("drawer-1", "drawer") == 0, "a device whose driver failed to start is down"
    assert tree.registry.get(MANAGER) is manager and tree.restarts == 0, "the clean-up crashed the manager"

    gate.set()  # the driver unblocks: a later scan brings the drawer up

    async def up() -> dict[str, Any] | None:
        status = await drawer_status(tree)
        return status if status["state"] == "closed" else None
    await wait_until(up, timeout=15)
    assert await tree.ask(SUPERVISOR, "which_children") == [("device.drawer-1", True)]
    assert tree.registry.get(MANAGER) is manager and tree.restarts == 0
    assert tree.healthy()


# -- adding a driver is one spec ---------------------------------------------------------------


class FakeDrawer:
    """A drawer driver that exists only in this test."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.kicks: list[int | None] = []

    def kick(self, pin: int | None = None) -> None:
        self.kicks.append(pin)

    def is_open(self) -> bool:
        return bool(self.kicks)

    def close(self) -> None:
        pass


@pytest.fixture
def fake_drawers() -> Iterator[list[FakeDrawer]]:
    """Registers driver "test-drawer" for the test; the drawers it opened, in order."""
    opened: list[FakeDrawer] = []

    def open_fake(target: Target) -> FakeDrawer:
        assert target.rule.path is not None
        opened.append(FakeDrawer(target.rule.path))
        return opened[-1]
    register(DriverSpec("test-drawer", kind="drawer", bus="serial", needs=("path",), open=open_fake))
    yield opened
    unregister("test-drawer")


async def test_a_driver_added_as_one_spec_is_validated_by_the_config_and_brought_up_by_the_manager(
        fake_drawers: list[FakeDrawer], port: Path) -> None:
    with pytest.raises(ConfigError, match="driver 'test-drawer' needs path"):
        load_devices({"rules": [{"name": "drawer-9", "driver": "test-drawer"}]}, "store.toml", ("till-1",))
    devices = load_devices({"rules": [{"name": "drawer-9", "driver": "test-drawer", "path": str(port), "pin": 5,
                                       "till": "till-1"}], "scan_interval": 0.05}, "store.toml", ("till-1",))
    assert [(rule.kind, rule.bus) for rule in devices.rules] == [("drawer", "serial")]
    assert devices.for_till("drawer", "till-1") == devices.rules[0]

    async with supervision_tree(hardware(devices, START_WAIT)) as tree:
        async def closed() -> bool:
            return (await tree.ask(MANAGER, "statuses"))[0]["state"] == "closed"
        await wait_until(closed, timeout=10)
        assert await tree.ask(device_actor_name("drawer-9"), "kick") is True
        assert device_up("drawer-9", "drawer") == 1
        # out of paper (what a printer reports) is down for device_up: present, but nothing comes out
        await tree.ask(MANAGER, "report", "drawer-9", "paper_out", "paper out")
        assert device_up("drawer-9", "drawer") == 0
        await tree.ask(MANAGER, "report", "drawer-9", "ready", "paper ok")
        assert device_up("drawer-9", "drawer") == 1
        assert [drawer.path for drawer in fake_drawers] == [str(port)] and fake_drawers[0].kicks == [5]

        port.unlink()  # unplugged: the manager takes it down like any serial device

        async def down() -> bool:
            return (await tree.ask(MANAGER, "statuses"))[0]["state"] == "down"
        await wait_until(down, timeout=10)
        assert await tree.ask(SUPERVISOR, "which_children") == []
        assert tree.restarts == 0


def test_every_driver_module_registers_its_drivers() -> None:
    assert set(driver_names()) >= {
        "escpos-network", "escpos-serial", "escpos-usb", "hid-pos", "hid-keyboard", "serial-scanner",
        "serial-drawer", "printer-drawer", "serial-terminal", "serial-display"}
    for name in driver_names():
        spec = driver_spec(name)
        assert spec.bus in BUSES and (spec.open is not None or spec.bus == "none"), spec


@pytest.mark.parametrize(("spec", "says"), [
    (DriverSpec("serial-drawer", kind="drawer", bus="serial"), "already registered"),
    (DriverSpec("laser-printer", kind="printer", bus="parallel"), "bus 'parallel'"),
    (DriverSpec("Laser Printer", kind="printer", bus="usb"), "lowercase words"),
])
def test_a_malformed_or_clashing_driver_spec_is_refused(spec: DriverSpec, says: str) -> None:
    driver_names()  # the built-in drivers are registered
    with pytest.raises(ValueError, match=says):
        register(spec)
    assert spec not in [driver_spec(name) for name in driver_names()]


class UnreachableScanner:
    """A scanner driver that cannot connect its first `failures` times; records when it was tried."""

    def __init__(self, tries: list[float], failures: int) -> None:
        self._tries = tries
        self._failures = failures

    def open(self) -> None:
        self._tries.append(time.monotonic())
        if len(self._tries) <= self._failures:
            raise DeviceGone("not answering")

    def read_barcodes(self, timeout: float) -> list[str]:
        threading.Event().wait(timeout)
        return []

    def close(self) -> None:
        pass


async def test_a_scanner_that_cannot_be_reached_is_retried_with_a_growing_wait(port: Path) -> None:
    tries: list[float] = []
    register(DriverSpec("test-scanner", kind="scanner", bus="serial", needs=("path",),
                        open=lambda _target: UnreachableScanner(tries, failures=3)))
    try:
        devices = DevicesConfig(rules=(DeviceRule(name="scanner-9", driver="test-scanner", path=str(port)),),
                                scan_interval=0.05)
        async with supervision_tree(hardware(devices, START_WAIT)) as tree:
            async def ready() -> bool:
                return (await tree.ask(MANAGER, "statuses"))[0]["state"] == "ready"
            await wait_until(ready, timeout=10)
    finally:
        unregister("test-scanner")
    waits = [later - earlier for earlier, later in zip(tries, tries[1:], strict=False)]
    assert len(waits) == 3, tries
    assert waits[0] >= 0.25 * 0.8 and waits[1] >= waits[0] * 1.3 and waits[2] >= waits[1] * 1.3, waits


async def test_a_driver_of_a_kind_no_actor_runs_is_refused_when_the_manager_starts(port: Path) -> None:
    register(DriverSpec("test-scale", kind="scale", bus="serial", needs=("path",), open=lambda _target: None))
    try:
        devices = DevicesConfig(rules=(DeviceRule(name="scale-1", driver="test-scale", path=str(port)),))
        with pytest.raises(LookupError, match="'scale' devices, which no device actor runs"):
            DeviceManagerActor(devices, DeviceContext(RealHidBackend(), lambda _event: None))
    finally:
        unregister("test-scale")
