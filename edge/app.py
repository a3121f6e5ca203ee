"""The store edge process: the actor tree, the asyncio seam for NATS, and the till's HTTP server."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import trio

from actors.devices.context import MANAGER, SPOOLER, SUPERVISOR, DeviceContext, Notify
from actors.devices.manager import DeviceManagerActor
from actors.printing.spooler import PrintSpoolerActor
from actors.storage import db as local_db
from actors.storage.forwarder import ForwarderActor
from actors.storage.outbox import OutboxActor
from actors.till.actor import TillActor, TillDevices
from drivers.hid_backend import HidBackend, RealHidBackend
from drivers.hid_socket import SETTING_PREFIX as HID_SOCKET
from drivers.hid_socket import HidSocketBackend
from edge.api import build_api
from edge.events import EventHub
from edge_runtime import AsyncioSeam, ChildSpec, Notifier, Strategy, SupervisorSpec, Tree, supervision_tree
from novapos.adapters.http import serve
from novapos.config import ConfigError, StoreConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningEdge:
    tree: Tree
    url: str


def hid_backend(setting: str) -> HidBackend:
    """hidapi on a real store box; a HID bus served on a unix socket (the demo's) for socket:<path>."""
    if setting == "hidapi":
        return RealHidBackend()
    if setting.startswith(HID_SOCKET):
        return HidSocketBackend(Path(setting.removeprefix(HID_SOCKET)))
    raise ConfigError(f"devices.hid_backend must be 'hidapi' or '{HID_SOCKET}<socket path>', got {setting!r}")


def edge_tree(config: StoreConfig, seam: AsyncioSeam, notify: Notify) -> SupervisorSpec:
    """Outbox first (everything else writes to it), tills last (they use everything else).

    Devices have their own supervisor, started empty: the device manager adds a device actor when a
    device is plugged and removes it when it is unplugged. A crashing driver is restarted there and
    never reaches the tills."""
    config.check_runnable()
    devices = config.devices
    def serving(till: str) -> TillDevices:
        return TillDevices(*(getattr(devices.for_till(kind, till), "name", None)
                             for kind in ("printer", "drawer", "display")))
    db_path = config.state_dir / local_db.FILE_NAME
    tills = [ChildSpec(f"till.{till}", TillActor, (till, config.currency, config.products, config.store,
                                                    serving(till), notify, db_path, config.max_change_minor))
             for till in config.tills]
    return SupervisorSpec("edge", strategy=Strategy.ONE_FOR_ONE, intensity=5, period=10.0, children=[
        ChildSpec("outbox", OutboxActor, (db_path, config.tenant, config.store)),
        ChildSpec(SPOOLER, PrintSpoolerActor,
                  (db_path, config.store, [rule.name for rule in devices.rules if rule.kind == "printer"])),
        ChildSpec("forwarder", ForwarderActor,
                  (seam, config.nats_url, f"edge-{config.tenant}-{config.store}", config.forward_batch)),
        # rest_for_one: if the device supervisor gives up and restarts (empty), the manager restarts
        # after it and plugs in what is present again.
        SupervisorSpec("hardware", strategy=Strategy.REST_FOR_ONE, intensity=5, period=10.0, children=[
            SupervisorSpec(SUPERVISOR, strategy=Strategy.ONE_FOR_ONE, intensity=20, period=10.0, children=[]),
            ChildSpec(MANAGER, DeviceManagerActor, (devices, DeviceContext(hid_backend(devices.hid_backend), notify))),
        ]),
        SupervisorSpec("tills", strategy=Strategy.ONE_FOR_ONE, intensity=10, period=10.0, children=tills),
    ])


async def run_edge(config: StoreConfig, *, task_status: trio.TaskStatus[RunningEdge] = trio.TASK_STATUS_IGNORED) -> None:
    """Run one store's edge until cancelled; stops the tree in reverse order on the way out."""
    config.check_runnable()
    notifier = Notifier()
    events = EventHub()
    with AsyncioSeam() as seam:
        async with supervision_tree(edge_tree(config, seam, events.publish)) as tree:
            async with trio.open_nursery() as nursery:
                urls = await nursery.start(serve, build_api(config, tree, events), config.http_host, config.http_port)
                nursery.start_soon(notifier.run_watchdog, tree.healthy)
                notifier.ready()
                notifier.status(f"store {config.tenant}/{config.store} selling at {urls[0]}")
                log.info("store %s/%s edge ready: web till at %s", config.tenant, config.store, urls[0])
                try:
                    task_status.started(RunningEdge(tree, urls[0]))
                    await trio.sleep_forever()
                finally:
                    notifier.stopping()
