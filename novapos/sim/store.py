"""One simulated store, as the real edge wires it: the store's SQLite outbox (OutboxActor, the edge's journals),
the forwarder that drains it to JetStream (ForwarderActor), the health reporter (HealthReporter) and the catalog
sync (CatalogSyncActor) under a supervision tree of its own, on its worker process's one AsyncioSeam, with its
own NATS link (its credentials, its inbox prefix, TLS). Left out: the web till, the tills' actors and the
devices (a simulated device manager answers the health reporter: one receipt printer, ready); a sale is
committed to the outbox the way a till commits one (an idempotency key, then a kick to the forwarder).

An outage cuts the store's link (`CutLink.cut`): its connection is closed and every connect refused until it is
restored, as a pulled cable looks to the edge; the store sells on into its outbox, which drains when the link is
back."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from actors.cash.journal import cash_journal
from actors.catalog.sync import CatalogSyncActor
from actors.devices.context import MANAGER
from actors.health.reporter import HealthReporter
from actors.loyalty import local as loyalty_local
from actors.payments import offline as offline_cards
from actors.returns import journal as sales_journal
from actors.storage import db as local_db
from actors.storage.forwarder import ForwarderActor
from actors.storage.outbox import Journal, OutboxActor
from edge_runtime import Actor, AsyncioSeam, ChildSpec, Strategy, SupervisorSpec
from novapos.adapters.nats import NatsLink, store_inbox_prefix
from novapos.pricing import line_tax

SALE_VERSION = 2
ITEMS = (("COF-250", "Ground coffee 250 g", 499), ("MLK-1L", "Whole milk 1 l", 129),
         ("BRD-SD", "Sourdough loaf", 349), ("APL-KG", "Apples 1 kg", 279))
"""Items of the demo catalog (configs/demo-catalog.csv, hub.catalog.demo), at their seeded prices."""
TAX_CLASS, RATE_PPM = "reduced", 55_000
JOURNALS: tuple[Journal, ...] = (cash_journal, sales_journal.journal, offline_cards.journal, loyalty_local.journal)
"""The edge's journals (edge.app.JOURNALS, which a test holds this to), named here so that a worker does not import
the edge's web application."""
CATALOG_THREAD = "catalog@"
"""The catalog sync's thread is named CATALOG_THREAD + store (StoreThread): its 'version applied' lines say whose."""


class CutLink(NatsLink):
    """The store's real NATS link, with a switch the simulator's outages throw."""

    _cut = False

    @property
    def connected(self) -> bool:
        return not self._cut and super().connected

    async def connect(self, timeout: float = 2.0) -> None:
        if self._cut:
            raise ConnectionError("the store's link is cut (a simulated outage)")
        await super().connect(timeout)

    async def cut(self) -> None:
        """Close the connection (what was in flight fails) and refuse to connect until restore()."""
        self._cut = True
        await self.close()

    def restore(self) -> None:
        self._cut = False


class StoreThread(Actor):
    """Names the actor's thread `<actor>@<store>` (many stores share a worker process): its log lines, and the
    worker's CPU by role, say whose they are."""

    def __init__(self, *args: Any, store_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store_name = store_name

    def started(self) -> None:
        threading.current_thread().name = f"{self.actor_name}@{self._store_name}"
        super().started()


class SimOutbox(StoreThread, OutboxActor):
    """The edge's OutboxActor."""


class SimForwarder(StoreThread, ForwarderActor):
    """The edge's ForwarderActor."""


class SimHealth(StoreThread, HealthReporter):
    """The edge's HealthReporter."""


class SimCatalog(StoreThread, CatalogSyncActor):
    """The edge's CatalogSyncActor; the versions it applies are timed per store from its log lines."""


class SimulatedDevices(StoreThread):
    """Stands in for the device manager (named MANAGER), which the health reporter asks: one network receipt
    printer, ready."""

    def statuses(self) -> list[dict[str, Any]]:
        return [{"device": "receipt-printer", "kind": "printer", "state": "ready", "detail": "simulated"}]


def store_link(url: str, tenant: str, store: str, credentials: Path, tls: Any, require_tls: bool) -> CutLink:
    """The store's link as edge.app.store_link makes it (its credentials, inbox prefix, TLS)."""
    return CutLink(url, f"edge-{tenant}-{store}", credentials=credentials, inbox_prefix=store_inbox_prefix(tenant, store),
                   tls=tls, require_tls=require_tls)


def store_tree(state_dir: Path, tenant: str, store: str, seam: AsyncioSeam, link: NatsLink, *, catalog: bool,
               health_interval_s: int) -> SupervisorSpec:
    """The store's actors, in the edge's order and with the edge's restart settings (edge.app.edge_tree)."""
    db_path = state_dir / local_db.FILE_NAME
    named = {"store_name": store}
    return SupervisorSpec("edge", strategy=Strategy.ONE_FOR_ONE, intensity=5, period=10.0, children=[
        ChildSpec("outbox", SimOutbox, (db_path, tenant, store, JOURNALS), named),
        ChildSpec("forwarder", SimForwarder, (seam, link), named),
        *([ChildSpec("catalog", SimCatalog, (seam, link, state_dir, tenant), named)] if catalog else []),
        ChildSpec(MANAGER, SimulatedDevices, (), named),
        ChildSpec("health", SimHealth, (seam, link, tenant, store, (), db_path, health_interval_s), named),
    ])


def sale_body(store_number: int, seq: int) -> dict[str, Any]:
    """A cash sale of two demo items (sale.completed v2: price lock, tax included), varied by `seq`."""
    lines: list[dict[str, Any]] = []
    total = tax = 0
    for index in range(2):
        sku, name, price = ITEMS[(store_number + seq + index) % len(ITEMS)]
        quantity = 1 + (seq + index) % 3
        amount = price * quantity
        line_tax_minor = line_tax(amount, RATE_PPM, True)
        total, tax = total + amount, tax + line_tax_minor
        lines.append({"sku": sku, "name": name, "quantity": quantity, "catalog_version": 1,
                      "unit_price": {"minor": price, "currency": "EUR"}, "amount": {"minor": amount, "currency": "EUR"},
                      "tax": {"class": TAX_CLASS, "rate_ppm": RATE_PPM, "included": True,
                              "amount": {"minor": line_tax_minor, "currency": "EUR"}}})
    paid = -(-total // 500) * 500
    return {"till": "till-1", "session": "sim", "cashier": "sim", "currency": "EUR", "lines": lines,
            "total": {"minor": total, "currency": "EUR"}, "tax_total": {"minor": tax, "currency": "EUR"},
            "tenders": [{"method": "cash", "amount": {"minor": paid, "currency": "EUR"}}],
            "change": {"minor": paid - total, "currency": "EUR"}}


def cart_key() -> str:
    """The idempotency key a till gives a sale (its cart's id)."""
    return uuid.uuid4().hex
