"""The hub link: the one forwarder that moves the outbox to JetStream.

One forwarder per store, draining in outbox order, publishing each event with its id (scoped by its
subject) as Nats-Msg-Id and deleting it from the outbox only after JetStream's PubAck. A lost ack means a resend, which
JetStream (within its window) and the hub's inbox (forever) turn into a no-op, never a double sale.
While NATS is away the store keeps selling; the outbox grows and drains when NATS returns.
"""

from __future__ import annotations

import logging
import math
import time

from prometheus_client import Counter, Gauge

from edge_runtime import Actor, AsyncioSeam
from novapos.adapters.nats import NatsLink

log = logging.getLogger(__name__)

FORWARDED = Counter("novapos_edge_events_forwarded_total", "Events JetStream acknowledged and the outbox released")
FORWARD_FAILURES = Counter("novapos_edge_forward_failures_total", "Forwarding attempts that left events in the outbox")
OUTBOX_DEPTH = Gauge("novapos_edge_outbox_depth", "Events committed locally and not yet acknowledged by the hub's stream")

IDLE_POLL_S = 1.0
MAX_RETRY_S = 5.0


class ForwarderActor(Actor):
    """Drains the outbox actor into JetStream; woken by kick() after each sale and by a slow timer."""

    def __init__(self, seam: AsyncioSeam, nats_url: str, client_name: str, batch: int = 256,
                 publish_timeout: float = 2.0) -> None:
        super().__init__()
        self._seam = seam
        self._link = NatsLink(nats_url, client_name)
        self._batch = batch
        self._timeout = publish_timeout
        self._retry_delay = 0.0
        self._due = math.inf  # when the one live wake-up timer fires
        self._token = 0       # which timer is the live one; older timers are stale and do nothing

    def started(self) -> None:
        self._schedule(0.0)

    def stopping(self) -> None:
        try:
            self._seam.run_blocking(self._link.close, timeout=3.0)
        except Exception as exc:  # the seam may already be closing with the process
            log.debug("closing the NATS link: %s", exc)

    def kick(self) -> None:
        """Something was appended: drain now, or, while NATS is away, at the next retry (not sooner)."""
        self._schedule(self._retry_delay)

    def wake(self, token: int) -> None:
        if token == self._token:
            self._due = math.inf
            self._drain()

    def _schedule(self, delay: float) -> None:
        """Make sure a drain happens within `delay` seconds: one live timer, moved earlier if need be."""
        due = time.monotonic() + delay
        if due < self._due:
            self._due, self._token = due, self._token + 1
            self.send_after(delay, "wake", self._token)

    def _drain(self) -> int:
        """Publish batches until the outbox is empty or NATS stops acknowledging; returns events forwarded."""
        forwarded = 0
        while True:
            batch = self.registry.ask("outbox", "pending", self._batch)
            if not batch:
                break
            acked = self._publish(batch)
            if acked:
                self.registry.ask("outbox", "remove", acked)
                forwarded += len(acked)
                FORWARDED.inc(len(acked))
            if len(acked) < len(batch):
                FORWARD_FAILURES.inc()
                self._retry_delay = min(MAX_RETRY_S, max(0.25, self._retry_delay * 2))
                log.warning("hub stream unreachable: %d event(s) stay in the outbox, retrying in %.2f s",
                            len(batch) - len(acked), self._retry_delay)
                break
            self._retry_delay = 0.0
        OUTBOX_DEPTH.set(self.registry.ask("outbox", "depth"))
        self._schedule(self._retry_delay or IDLE_POLL_S)
        return forwarded

    def _publish(self, batch: list) -> list[str]:
        try:
            if not self._link.connected:
                self._seam.run_blocking(self._link.connect, timeout=self._timeout + 1)
            return self._seam.run_blocking(self._link.publish_batch, batch, self._timeout,
                                           timeout=self._timeout + 1)
        except Exception as exc:  # NATS down at connect, or the seam timed out: nothing was acknowledged
            log.debug("forwarding failed: %s", exc)
            return []
