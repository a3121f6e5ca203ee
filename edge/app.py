"""The store edge process: the actor tree, the asyncio seam for NATS, and the till's HTTP server.

One edge per state folder: the process holds an exclusive lock on a file in it before it starts
anything, so the same config started twice stops at once (StateFolderInUse) instead of connecting
to NATS and the printer and restoring the tills first: a store has one forwarder and one spooler.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from actors.cash.journal import cash_journal
from actors.catalog.local import catalog_path
from actors.catalog.sync import CatalogSyncActor
from actors.devices.context import MANAGER, SPOOLER, SUPERVISOR, DeviceContext, Notify
from actors.devices.manager import DeviceManagerActor
from actors.health.leaf import LeafBacklog
from actors.health.reporter import HealthReporter
from actors.loyalty import local as loyalty_local
from actors.payments import offline as offline_cards
from actors.payments.asking import PaymentsHub
from actors.payments.cards import NAME as CARDS
from actors.payments.cards import CardsActor
from actors.payments.events import NAME as PAYMENT_EVENTS
from actors.payments.events import PaymentEventsActor
from actors.printing.spooler import PrintSpoolerActor
from actors.returns import journal as sales_journal
from actors.returns.lookup import NAME as RETURNS
from actors.returns.lookup import ReturnsLookupActor
from actors.staff.actor import StaffActor
from actors.staff.logins import LOGINS, LoginActor
from actors.stock.actor import StockActor
from actors.storage import db as local_db
from actors.storage.backup import BackupActor
from actors.storage.forwarder import ForwarderActor
from actors.storage.outbox import Journal, OutboxActor
from actors.till.actor import TillActor, TillDevices
from drivers.hid_backend import HidBackend, RealHidBackend
from drivers.hid_socket import SETTING_PREFIX as HID_SOCKET
from drivers.hid_socket import HidSocketBackend
from edge.api import build_api
from edge.api.stock import STOCK
from edge.events import EventHub
from edge_runtime import AsyncioSeam, ChildSpec, Notifier, Strategy, SupervisorSpec, Tree, supervision_tree
from novapos import logs
from novapos.adapters.http import serve
from novapos.adapters.nats import NatsLink, store_inbox_prefix
from novapos.config import ConfigError, StoreConfig
from novapos.config.receipt import ReceiptSettings
from novapos.metrics import install as install_metrics
from novapos.tls import Certificates

log = logging.getLogger(__name__)

LOCK_FILE = "edge.lock"
JOURNALS: tuple[Journal, ...] = (cash_journal, sales_journal.journal, offline_cards.journal, loyalty_local.journal)
"""The domain tables kept in step with the outbox, in the transaction of each event (actors.storage.outbox.Journal)."""
LINK_CLOSE_TIMEOUT_S = 3.0


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


def store_link(config: StoreConfig, certificates: Certificates | None = None) -> NatsLink:
    """The store's one NATS link, shared by every edge actor that talks to the hub: logged in with the
    store's credentials, its replies under the store's own inbox prefix (all its user may subscribe to),
    over TLS with the store's certificates (`certificates`, the running edge's, reloaded; else loaded now
    from [tls], for a command that connects once)."""
    if config.leaf is not None:  # the box's own leaf node (novapos.leaf): loopback, no TLS, the store's key
        return NatsLink(config.leaf.local_url, f"edge-{config.tenant}-{config.store}",
                        credentials=config.nats_credentials,
                        inbox_prefix=store_inbox_prefix(config.tenant, config.store))
    certificates = certificates or Certificates(config.tls)
    return NatsLink(config.nats_url, f"edge-{config.tenant}-{config.store}", credentials=config.nats_credentials,
                    inbox_prefix=store_inbox_prefix(config.tenant, config.store), tls=certificates.client,
                    require_tls=certificates.verifies_servers)


def edge_tree(config: StoreConfig, seam: AsyncioSeam, notify: Notify, link: NatsLink) -> SupervisorSpec:
    """Outbox first (everything else writes to it), the catalog sync before the tills (they read its
    file), tills after what they use, the payment events after the tills (it tells them).

    `link` (store_link) outlives the tree: its owner closes it after the tree stops.
    Devices have their own supervisor, started empty: the device manager adds a device actor when a
    device is plugged and removes it when it is unplugged. A crashing driver is restarted there and
    never reaches the tills."""
    config.check_runnable()
    devices = config.devices
    def serving(till: str) -> TillDevices:
        return TillDevices(*(getattr(devices.for_till(kind, till), "name", None)
                             for kind in ("printer", "drawer", "display", "terminal")))
    db_path = config.state_dir / local_db.FILE_NAME
    catalog = (catalog_path(config.state_dir), config.region)
    tills = [ChildSpec(f"till.{till}", TillActor, (till, config.currency, catalog, config.store,
                                                    serving(till), notify, db_path, config.max_change_minor),
                       {"terminal": config.terminal, "cash": config.cash, "returns": config.returns,
                        "payments": PaymentsHub(link, seam, config.tenant, config.store), "loyalty": config.loyalty})
             for till in config.tills]
    return SupervisorSpec("edge", strategy=Strategy.ONE_FOR_ONE, intensity=5, period=10.0, children=[
        ChildSpec("outbox", OutboxActor, (db_path, config.tenant, config.store, JOURNALS)),
        ChildSpec(SPOOLER, PrintSpoolerActor,
                  (db_path, config.receipt or ReceiptSettings(name=config.store),
                   [rule.name for rule in devices.rules if rule.kind == "printer"])),
        ChildSpec("forwarder", ForwarderActor, (seam, link, config.forward_batch)),
        ChildSpec(STOCK, StockActor, (link, seam, config.tenant, config.store)),
        ChildSpec(RETURNS, ReturnsLookupActor, (db_path, link, seam, config.tenant, config.store)),
        ChildSpec(CARDS, CardsActor, (db_path, link, seam, config.tenant, config.store, config.currency)),
        ChildSpec("catalog", CatalogSyncActor, (seam, link, config.state_dir, config.tenant)),
        ChildSpec("staff", StaffActor, (seam, link, config.state_dir, config.tenant, config.store,
                                        config.staff_refresh_s, config.login.offline_after_s)),
        ChildSpec(LOGINS, LoginActor, (config.state_dir, config.login)),
        # rest_for_one: if the device supervisor gives up and restarts (empty), the manager restarts
        # after it and plugs in what is present again.
        SupervisorSpec("hardware", strategy=Strategy.REST_FOR_ONE, intensity=5, period=10.0, children=[
            SupervisorSpec(SUPERVISOR, strategy=Strategy.ONE_FOR_ONE, intensity=20, period=10.0, children=[]),
            ChildSpec(MANAGER, DeviceManagerActor, (devices, DeviceContext(hid_backend(devices.hid_backend), notify))),
        ]),
        SupervisorSpec("tills", strategy=Strategy.ONE_FOR_ONE, intensity=10, period=10.0, children=tills),
        # after the tills, which it tells of their payments' outcomes; a crash of it restarts it alone
        ChildSpec(PAYMENT_EVENTS, PaymentEventsActor, (seam, link, db_path, config.tenant, config.store)),
        ChildSpec("health", HealthReporter, (seam, link, config.tenant, config.store, config.tills, db_path,
                                             config.health_interval_s),
                  {"leaf": None if config.leaf is None else LeafBacklog()}),
        *([ChildSpec("backup", BackupActor, (db_path, config.state_dir, config.backup))]
          if config.backup.every_s else []),
    ])


class StateFolderInUse(Exception):
    """Another edge process runs on this state folder; the message says which and what to do."""


@contextmanager
def state_folder_lock(state_dir: Path) -> Iterator[None]:
    """Hold the state folder for this process while the block runs. The lock is the kernel's
    (flock), so it goes with the process however it ends (kill -9 included): a leftover file never
    blocks the next start. The file holds the holder's pid, for the refusal's sentence."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 16, 0).decode("ascii", "replace").strip()
            raise StateFolderInUse(f"another novapos edge (pid {holder if holder.isdigit() else 'unknown'}) is "
                                   f"running with the state folder {state_dir}: stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def refuse_busy_port(host: str, port: int) -> None:
    """Bind and release the HTTP address before the actor tree starts: a taken port is the same
    EADDRINUSE the server would meet, but before NATS, devices and tills are started for nothing."""
    if port == 0:
        return
    for family, kind, proto, _name, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise
                log.debug("probing %s: %s", address, exc)  # the server's own bind will say it


@asynccontextmanager
async def _closing(seam: AsyncioSeam, link: NatsLink) -> AsyncIterator[None]:
    """Close `link` once the block (the actor tree that uses it) has ended, whatever its state."""
    try:
        yield
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(LINK_CLOSE_TIMEOUT_S):
            await seam.run(link.close)


async def run_edge(config: StoreConfig, *, task_status: trio.TaskStatus[RunningEdge] = trio.TASK_STATUS_IGNORED) -> None:
    """Run one store's edge until cancelled; stops the tree in reverse order on the way out.
    StateFolderInUse (before anything starts) if another edge runs on the same state folder.
    Every line the process logs from here on names the store's tenant and store (an edge serves one store)."""
    config.check_runnable()
    install_metrics()
    notifier = Notifier()
    events = EventHub()
    logs.bind_process(tenant=config.tenant, store=config.store)
    with state_folder_lock(config.state_dir), AsyncioSeam() as seam:
        refuse_busy_port(config.http_host, config.http_port)
        certificates = Certificates(config.tls)
        certificates.warn_if_off("store edge")
        link = store_link(config, certificates)
        async with _closing(seam, link), supervision_tree(edge_tree(config, seam, events.publish, link)) as tree:
            await _serve(config, tree, events, notifier, certificates, task_status)


async def _serve(config: StoreConfig, tree: Tree, events: EventHub, notifier: Notifier, certificates: Certificates,
                 task_status: trio.TaskStatus[RunningEdge]) -> None:
    """The till's HTTP server (HTTPS with [tls]), the certificates' reload and the watchdog, until cancelled."""
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(serve, tls=certificates.server), build_api(config, tree, events),
                                   config.http_host, config.http_port)
        nursery.start_soon(certificates.watch)
        nursery.start_soon(notifier.run_watchdog, tree.healthy)
        notifier.ready()
        notifier.status(f"store {config.tenant}/{config.store} selling at {urls[0]}")
        log.info("store %s/%s edge ready: web till at %s", config.tenant, config.store, urls[0])
        try:
            task_status.started(RunningEdge(tree, urls[0]))
            await trio.sleep_forever()
        finally:
            notifier.stopping()
