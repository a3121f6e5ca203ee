"""The hub link: the one forwarder that moves the outbox to JetStream.

One forwarder per store, draining in outbox order, publishing each event with its id (scoped by its
subject) as Nats-Msg-Id and deleting it from the outbox only after JetStream's PubAck. A lost ack means a resend, which
JetStream (within its window) and the hub's inbox (forever) turn into a no-op, never a double sale.
Events are published one after the other and only the acknowledged prefix leaves the outbox, so a
store's events reach the stream in sequence order, even when a publish fails mid-batch.
While NATS is away the store keeps selling; the outbox grows and drains when NATS returns. The
forwarder says so once when the link is lost and once when it is back, retries with backoff, and
answers `status()` for /healthz. An outbox that cannot answer in time, or whose file another program
holds locked, is the same kind of state: said once, retried with the same backoff, never a crash
(events published but not released are published again, and JetStream drops the duplicates).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

import pykka
from prometheus_client import Counter, Gauge

from actors.protocol import Rejected
from actors.storage.outbox import Backlog, Released
from edge_runtime import Actor, AsyncioSeam, Backoff
from novapos import logs
from novapos.adapters.nats import NatsLink, Outgoing, Published

log = logging.getLogger(__name__)

FORWARDED = Counter("novapos_edge_events_forwarded_total", "Events JetStream acknowledged and the outbox released")
FORWARD_FAILURES = Counter("novapos_edge_forward_failures_total", "Forwarding attempts that left events in the outbox")
OUTBOX_DEPTH = Gauge("novapos_edge_outbox_depth", "Events committed locally and not yet acknowledged by the hub's stream")
OLDEST_UNSENT = Gauge("novapos_edge_outbox_oldest_unsent_age_seconds",
                      "Age of the oldest event in the outbox, by its own clock, as of the last drain (0: empty)")
HUB_LINK_UP = Gauge("novapos_edge_hub_link_up", "1 while the last drain reached the hub's stream, 0 while NATS is "
                    "unreachable or refuses the store (the store sells either way)")

IDLE_POLL_S = 1.0
RETRY = Backoff(initial=0.25, maximum=5.0)
REFUSED_RETRY_S = 60.0  # NATS refused the credentials: only a person fixes that, so try again rarely
OUTBOX_TIMEOUT_S = 4.0  # more than the outbox's longest wait for a lock (db.LOCK_WAIT_S)
STATUS_TIMEOUT_S = 2.0  # within /healthz's own wait for status()


def _event_fields(event: Outgoing) -> dict[str, str]:
    """The log context of one event: which (a sale's id is its sale.completed event's)."""
    fields = {"event": event.event_id}
    if event.subject.endswith(".sale_completed"):
        fields["sale"] = event.event_id
    return fields


def _forwarded(batch: list[Outgoing], published: Published) -> None:
    """At DEBUG, a line per event JetStream acknowledged, with its ids."""
    if log.isEnabledFor(logging.DEBUG):
        for event in batch[:len(published.acked)]:
            with logs.bound(**_event_fields(event)):
                log.debug("event %s forwarded on %s", event.event_id, event.subject)


class ForwarderActor(Actor):
    """Drains the outbox actor into JetStream, a batch per wake-up; woken by kick() after each sale
    and by a slow timer (IDLE_POLL_S), so an event committed without a kick still leaves."""

    def __init__(self, seam: AsyncioSeam, link: NatsLink, batch: int = 256, publish_timeout: float = 2.0) -> None:
        """`link`: the store's one NATS link, shared with the other edge actors; its owner closes it."""
        super().__init__()
        self._seam = seam
        self._link = link
        self._batch = batch
        self._timeout = publish_timeout
        self._failures = 0    # consecutive failed attempts; 0 while the link works
        self._reached = False  # the last attempt reached the hub's stream
        self._since = time.monotonic(), datetime.now(UTC)  # when the link's state last changed
        self._due = math.inf  # when the one live wake-up timer fires
        self._token = 0       # which timer is the live one; older timers are stale and do nothing
        self._stalls = 0      # consecutive drains the outbox could not serve (locked file, no answer)

    def started(self) -> None:
        self._schedule(0.0)

    def kick(self) -> None:
        """Something was appended: drain now, or, while NATS is away, at the next retry (not sooner)."""
        self._schedule(self._retry_delay())

    def wake(self, token: int) -> None:
        if token == self._token:
            self._due = math.inf
            with logs.detached():  # a drain forwards whatever waits, not only the sale whose kick woke it
                self._drain()

    def status(self) -> dict[str, Any]:
        """The hub link for /healthz: a store sells either way; an unreachable link is degraded."""
        link: dict[str, Any] = {"hub_link": "connected" if self._reached else "unreachable",
                                "since": self._since[1].isoformat(timespec="seconds")}
        refusal = self._link.refusal
        if refusal is not None:
            link = {**link, "nats": f"credentials {refusal.kind}", "nats_problem": refusal.advice()}
        try:
            backlog: Backlog = self.registry.ask("outbox", "backlog", timeout=STATUS_TIMEOUT_S)
        except pykka.Timeout:  # the outbox is busy or restarting: the link's state is still worth telling
            return link
        return {**link, "outbox_depth": backlog.depth, "oldest_unsent_age_s": backlog.oldest_age_s}

    def _retry_delay(self) -> float:
        if self._failures and self._link.refusal is not None:  # no hammering: a person must act first
            return REFUSED_RETRY_S
        return RETRY.delay(self._failures + 1) if self._failures else 0.0

    def _schedule(self, delay: float) -> None:
        """Make sure a drain happens within `delay` seconds: one live timer, moved earlier if need be."""
        due = time.monotonic() + delay
        if due < self._due:
            self._due, self._token = due, self._token + 1
            token = self._token
            self.send_after(delay, "wake", token, still=lambda: token == self._token)  # a stale timer: no wake-up

    def _drain(self) -> None:
        """Publish one batch, release what JetStream acknowledged, and schedule the next drain: at
        once while a backlog remains, after a backoff when the link failed, else at the idle poll.
        One batch per message keeps status() and kick() answered during a long backlog."""
        refused: Rejected | None = None
        try:
            batch = self.registry.ask("outbox", "pending", self._batch, timeout=OUTBOX_TIMEOUT_S)
            published = self._publish(batch)
            _forwarded(batch, published)
            released: Released = self.registry.ask("outbox", "release", published.acked, timeout=OUTBOX_TIMEOUT_S)
            refused, backlog = released.refused, released.backlog
            if published.acked and refused is None:
                FORWARDED.inc(len(published.acked))
        except pykka.Timeout as exc:
            self._outbox_stalls(f"did not answer ({exc})")
            return
        depth = backlog.depth
        OUTBOX_DEPTH.set(depth)
        OLDEST_UNSENT.set(backlog.oldest_age_s or 0.0)
        HUB_LINK_UP.set(1 if published.failure is None else 0)
        if published.failure is None:
            self._link_works(depth)
        else:
            stuck = batch[len(published.acked):len(published.acked) + 1]  # the event publishing stopped at
            with logs.bound(**(_event_fields(stuck[0]) if stuck else {})):
                self._link_fails(published, depth)
        if refused is not None:
            self._outbox_stalls(f"cannot release what the hub's stream took: {refused.message}")
            return
        if self._stalls:
            log.info("the outbox answers again after %d tries; forwarding goes on (%d waiting)", self._stalls, depth)
            self._stalls = 0
        if published.failure is None:
            self._schedule(0.0 if depth else IDLE_POLL_S)
        else:
            self._schedule(self._retry_delay())

    def _outbox_stalls(self, why: str) -> None:
        """The outbox could not serve this drain: say so once, and try again after a backoff."""
        self._stalls += 1
        if self._stalls == 1:
            log.warning("the outbox %s; its events stay there and are forwarded later (any sent twice, JetStream "
                        "drops); retrying with backoff", why)
        self._schedule(RETRY.delay(self._stalls + 1))  # Backoff: the first delay is for the second try

    def _publish(self, batch: list[Outgoing]) -> Published:
        """Connect if need be (even with nothing to send, so the link's state is known), then publish."""
        try:
            if not self._link.connected:  # connected: no thread hop per drain (idle polls included)
                self._seam.run_blocking(self._link.connect, self._timeout, timeout=self._timeout + 1)
            if not batch:
                return Published([])
            published: Published = self._seam.run_blocking(self._link.publish_batch, batch, self._timeout,
                                                           timeout=2 * self._timeout + 1)
            return published
        except Exception as exc:  # NATS away at connect, or the seam timed out: nothing was acknowledged
            return Published([], str(exc) or f"no answer within {self._timeout:g} s")

    def _link_works(self, depth: int) -> None:
        if not self._reached:
            if self._failures:
                log.info("reached NATS at %s again after %.0f s; the outbox is draining (%d left)",
                         logs.address(self._link.url), time.monotonic() - self._since[0], depth)
            self._reached, self._since = True, (time.monotonic(), datetime.now(UTC))
        self._failures = 0

    def _link_fails(self, published: Published, depth: int) -> None:
        if depth:
            FORWARD_FAILURES.inc()
        if self._reached or not self._failures:  # said once per loss, not at every retry
            if self._link.refusal is not None:
                log.warning("NATS at %s refuses this store's credentials: sales stay in the outbox (%d), retrying "
                            "every %.0f s, not sooner. %s", logs.address(self._link.url), depth, REFUSED_RETRY_S,
                            self._link.refusal.advice())
            elif published.refused:
                log.warning("the hub's stream at %s refused %s: it and the sales after it stay in the outbox, "
                            "in order (%d); check the stream's limits and subjects", logs.address(self._link.url),
                            published.failure, depth)
            else:
                log.warning("cannot reach NATS at %s (%s): sales stay in the outbox (%d); check the network "
                            "and the hub's NATS", logs.address(self._link.url), published.failure, depth)
            self._reached, self._since = False, (time.monotonic(), datetime.now(UTC))
        self._failures += 1
