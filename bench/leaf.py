"""Leaf node or direct connection: what a store sees and how fast its events reach the hub's stream.

    python -m bench.leaf [--events 200] [--rtt-ms 40] [--outage-s 30]

Real parts: the hub's nats-server (JetStream domain `hub`, TLS, the generated authorization), a store's
leaf nats-server (novapos.leaf) and a directly connected store, each behind a relay standing for the WAN
(tests.wan: `--rtt-ms` round trip, cuttable). Events are published one after the other, each awaiting its
PubAck, as the edge's forwarder does. Figures (the last line of stdout is one JSON object):

- direct_ack_ms_p50/p99, leaf_ack_ms_p50/p99: publish-to-PubAck at the store: a round trip to the hub
  through the WAN, or to the box's own leaf.
- direct_forward_events_per_s, leaf_forward_events_per_s: how fast the store empties a backlog (one
  PubAck at a time: 1/RTT direct).
- direct_to_hub_ms_p50/p99, leaf_to_hub_ms_p50/p99: publish at the store to the event in the hub's stream.
- after an outage of `--outage-s` with `--events` sold meanwhile: direct_catch_up_s (reconnect, then the
  backlog one PubAck at a time), leaf_catch_up_server_retry_s (nats-server's own source retry: 10 s x
  failures, up to 2 min), leaf_catch_up_hub_restart_s (the hub's watcher, hub.ingest.leaf_sources,
  restarting the stalled source one second after the WAN is back: its [leaf] check_every_s at 1).

Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from hub.ingest.leaf_sources import ensure_leaf_sources, restart_leaf_sources
from novapos.adapters.nats import NatsLink, store_inbox_prefix
from novapos.config.leaf import LeafSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.leaf import LeafNode
from novapos.wire.subjects import EVENTS_STREAM, event_subject
from tests.wan import Wan

TENANT, LEAF_STORE, DIRECT_STORE = "demo", "store-leaf", "store-direct"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


class Setup:
    def __init__(self, root: Path, rtt_s: float) -> None:
        self.nats = EmbeddedNats.authorized(root / "nats", stores=((TENANT, DIRECT_STORE),),
                                            leaf_stores=((TENANT, LEAF_STORE),), domain="hub",
                                            leafnode_port=free_port()).start()
        assert self.nats.leafnode_port is not None
        self.leaf_wan = Wan(self.nats.leafnode_port, delay_s=rtt_s / 2)
        self.direct_wan = Wan(self.nats.port, delay_s=rtt_s / 2)
        self.leaf = LeafNode(TENANT, LEAF_STORE, LeafSettings(f"tls://127.0.0.1:{self.leaf_wan.port}", 0, root / "leaf"),
                             self.nats.store_credentials(TENANT, LEAF_STORE), self.nats.tls_settings()).start()

    def stop(self) -> None:
        self.leaf.stop()
        self.leaf_wan.close()
        self.direct_wan.close()
        self.nats.stop()

    def direct_link(self) -> NatsLink:
        return NatsLink(f"tls://127.0.0.1:{self.direct_wan.port}", "bench-direct",
                        credentials=self.nats.store_credentials(TENANT, DIRECT_STORE),
                        inbox_prefix=store_inbox_prefix(TENANT, DIRECT_STORE), tls=self.nats.client_tls())


class Arrivals:
    """When each event (by its Nats-Msg-Id) appeared in the hub's stream: an ordered consumer of the hub's."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    async def start(self, hub: Client) -> None:
        async def arrived(msg: Any) -> None:
            self.at[(msg.headers or {}).get("Nats-Msg-Id", "")] = time.perf_counter()
        await hub.jetstream().subscribe("novapos.>", stream=EVENTS_STREAM, ordered_consumer=True, cb=arrived)

    async def wait(self, ids: list[str], timeout: float) -> float:
        deadline = time.perf_counter() + timeout
        while not all(i in self.at for i in ids):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{sum(i in self.at for i in ids)} of {len(ids)} events reached the hub")
            await asyncio.sleep(0.02)
        return max(self.at[i] for i in ids)


async def publish(link: NatsLink, store: str, tag: str, count: int) -> tuple[list[str], list[float], list[float]]:
    """Publish `count` events one PubAck at a time (as the forwarder does): ids, send times, ack latencies."""
    ids, sent, acks = [], [], []
    for number in range(count):
        msg_id = f"{tag}-{number}"
        started = time.perf_counter()
        await link.js.publish(event_subject(TENANT, store, "sale.completed"), b"x" * 400,
                              headers={"Nats-Msg-Id": msg_id}, timeout=30)
        acks.append(time.perf_counter() - started)
        ids.append(msg_id)
        sent.append(started)
    return ids, sent, acks


async def run(events: int, rtt_s: float, outage_s: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="novapos-bench-leaf-"))
    setup = Setup(root, rtt_s)
    try:
        hub = await nats.connect(setup.nats.url, **setup.nats.hub_options())
        hub_link = setup.nats.hub_link("bench-hub")
        await hub_link.connect()
        await hub_link.ensure_event_stream()
        await hub_link.ensure_catalog_stream(TENANT)
        await ensure_leaf_sources(hub_link.js, [(TENANT, LEAF_STORE)])
        await setup.leaf.ensure_streams()
        arrivals = Arrivals()
        await arrivals.start(hub)
        leaf = setup.leaf.link("bench-leaf")
        direct = setup.direct_link()
        await leaf.connect()
        await direct.connect(timeout=10)
        figures: dict[str, Any] = {"events": events, "rtt_ms": round(rtt_s * 1000), "outage_s": outage_s}

        for name, link, store in (("direct", direct, DIRECT_STORE), ("leaf", leaf, LEAF_STORE)):
            say(f"{name}: {events} events, one PubAck at a time")
            began = time.perf_counter()
            ids, sent, acks = await publish(link, store, f"{name}-steady", events)
            figures[f"{name}_forward_events_per_s"] = round(events / (time.perf_counter() - began), 1)
            await arrivals.wait(ids, 60)
            to_hub = [arrivals.at[i] - s for i, s in zip(ids, sent, strict=True)]
            figures.update({f"{name}_ack_ms_p50": ms(acks, 0.5), f"{name}_ack_ms_p99": ms(acks, 0.99),
                            f"{name}_to_hub_ms_p50": ms(to_hub, 0.5), f"{name}_to_hub_ms_p99": ms(to_hub, 0.99)})

        say(f"direct: WAN cut for {outage_s:g} s, {events} sales kept in the outbox, then forwarded")
        setup.direct_wan.cut()
        await asyncio.sleep(outage_s)
        setup.direct_wan.restore()
        restored = time.perf_counter()
        while not direct.connected:
            await asyncio.sleep(0.05)
        ids, _, _ = await publish(direct, DIRECT_STORE, "direct-outage", events)
        figures["direct_catch_up_s"] = round(await arrivals.wait(ids, 120) - restored, 2)

        for mode in ("server_retry", "hub_restart"):
            say(f"leaf: WAN cut for {outage_s:g} s, {events} sales acked by the leaf meanwhile ({mode})")
            setup.leaf_wan.cut()
            ids, _, acks = await publish(leaf, LEAF_STORE, f"leaf-outage-{mode}", events)
            figures[f"leaf_ack_ms_p99_during_outage_{mode}"] = ms(acks, 0.99)
            await asyncio.sleep(outage_s)
            setup.leaf_wan.restore()
            restored = time.perf_counter()
            if mode == "hub_restart":
                await asyncio.sleep(1.0)  # the watcher's next round, at check_every_s = 1
                await restart_leaf_sources(hub_link.js, [(TENANT, LEAF_STORE)])
            figures[f"leaf_catch_up_{mode}_s"] = round(await arrivals.wait(ids, 300) - restored, 2)
            say(f"  caught up in {figures[f'leaf_catch_up_{mode}_s']} s")

        held = (await hub_link.js.stream_info(EVENTS_STREAM)).state.messages
        figures["hub_stream_messages"] = held
        figures["hub_stream_expected"] = 5 * events  # no duplicate, nothing lost
        await leaf.close()
        await direct.close()
        await hub_link.close()
        await hub.close()
        return figures
    finally:
        setup.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="events per run (default: %(default)s)")
    parser.add_argument("--rtt-ms", type=float, default=40.0, help="the WAN's round trip (default: %(default)s)")
    parser.add_argument("--outage-s", type=float, default=30.0, help="how long the WAN is cut (default: %(default)s)")
    args = parser.parse_args()
    figures = asyncio.run(run(args.events, args.rtt_ms / 1000, args.outage_s))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
