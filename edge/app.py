"""The store edge process: the actor tree, the asyncio seam for NATS, and the till's HTTP server."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from actors.forwarder import ForwarderActor
from actors.outbox import OutboxActor
from actors.printer import ReceiptPrinterActor
from actors.till import TillActor
from edge.api import build_api
from edge_runtime import AsyncioSeam, ChildSpec, Notifier, Strategy, SupervisorSpec, Tree, supervision_tree
from novapos.config import StoreConfig
from novapos.http import serve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningEdge:
    tree: Tree
    url: str


def edge_tree(config: StoreConfig, seam: AsyncioSeam) -> SupervisorSpec:
    """Outbox first (everything else writes to it), tills last (they use everything else)."""
    config.check_runnable()
    assert config.printer is not None
    return SupervisorSpec("edge", strategy=Strategy.ONE_FOR_ONE, intensity=5, period=10.0, children=[
        ChildSpec("outbox", OutboxActor, (config.state_dir / "outbox.sqlite3", config.tenant, config.store)),
        ChildSpec("printer", ReceiptPrinterActor, (config.printer.host, config.printer.port, config.store)),
        ChildSpec("forwarder", ForwarderActor,
                  (seam, config.nats_url, f"edge-{config.tenant}-{config.store}", config.forward_batch)),
        SupervisorSpec("tills", strategy=Strategy.ONE_FOR_ONE, intensity=10, period=10.0, children=[
            ChildSpec(f"till.{till}", TillActor, (till, config.currency, config.products)) for till in config.tills]),
    ])


async def run_edge(config: StoreConfig, *, task_status: trio.TaskStatus[RunningEdge] = trio.TASK_STATUS_IGNORED) -> None:
    """Run one store's edge until cancelled; stops the tree in reverse order on the way out."""
    config.check_runnable()
    notifier = Notifier()
    with AsyncioSeam() as seam:
        async with supervision_tree(edge_tree(config, seam)) as tree:
            async with trio.open_nursery() as nursery:
                urls = await nursery.start(serve, build_api(config, tree), config.http_host, config.http_port)
                nursery.start_soon(notifier.run_watchdog, tree.healthy)
                notifier.ready()
                notifier.status(f"store {config.tenant}/{config.store} selling at {urls[0]}")
                log.info("store %s/%s edge ready: web till at %s", config.tenant, config.store, urls[0])
                try:
                    task_status.started(RunningEdge(tree, urls[0]))
                    await trio.sleep_forever()
                finally:
                    notifier.stopping()
