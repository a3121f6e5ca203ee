"""Reading a JetStream pull consumer through a callback, a batch at a time, with one pull request in flight.

nats-py's `fetch` waits once per message (an asyncio.wait_for each) and its `msg.metadata` parses a date
per message: together about five times what receiving costs, which a 100,000-item cold sync cannot
afford. Here messages land in a buffer from the subscription's callback, the next pull request leaves as
soon as the previous one is served (so the server keeps sending while the caller applies a batch), and
the stream and consumer sequences are read straight from the reply subject.

An idle store keeps one long pull open (EXPIRES_S): a change is delivered the moment it is published, and
the store asks the server again only when the request expires, not every second (at 5,000 stores, 5,000
`MSG.NEXT` requests a second for nothing). The request carries an idle heartbeat (HEARTBEAT_S): the server
answers it with a status 100 message while it has nothing to send, so a pull that died at the server (its
node lost, the server stalled, a half-open connection) is noticed once it misses two and the caller resumes.
An open pull is activity: the server keeps the consumer past its inactive threshold while one waits.
The request's expiry is not how long `take` waits: the caller's timeout says that.

All of it runs on the asyncio seam's loop; `take` is one crossing per batch.
"""

from __future__ import annotations

import asyncio
import json
import time

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

LINGER_S = 0.005  # once something arrived, how long a take waits for the rest of a batch
EXPIRES_S = 30.0  # how long a pull request stays open at the server: an idle store asks again this often
HEARTBEAT_S = 3.0  # the server's idle heartbeat on an open pull request (at most half its expiry)
ENDED = ("404", "408")  # no messages / request expired: the request is over, nothing is wrong


Delivered = tuple[str, bytes, int, int, int]
"""One message with what its reply subject says: (subject, data, stream sequence, consumer sequence,
messages still pending). A plain tuple of plain values: cheap to make 100,000 times, and one the garbage
collector stops tracking at its first pass (a NamedTuple, a tuple subclass, it tracks for ever)."""


def delivered(subject: str, data: bytes, reply: str) -> Delivered:
    """The sequences of a consumer's message, from its reply subject: $JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>.<consumer seq>.<time>.<pending> (with <domain>.<account hash> after ACK, and a token at
    the end, in the newer form)."""
    tokens = reply.split(".")
    base = 2 if len(tokens) == 9 else 4
    if len(tokens) < 9 or tokens[1] != "ACK":
        raise ConnectionError(f"a catalog message came without JetStream's reply subject ({reply[:80]!r})")
    return subject, data, int(tokens[base + 3]), int(tokens[base + 4]), int(tokens[base + 6])


class Puller:
    """An ephemeral consumer's messages, pulled `batch` at a time into a buffer of at most 4 batches.
    `heartbeat_s`: the idle heartbeat asked of the server (None: none, for a short read such as a snapshot's,
    whose requests expire within seconds anyway); an open request silent for two of them and a second is dead."""

    def __init__(self, client: Client, stream: str, consumer: str, batch: int, expires_s: float = EXPIRES_S,
                 heartbeat_s: float | None = HEARTBEAT_S) -> None:
        if heartbeat_s is not None and not 0 < heartbeat_s <= expires_s / 2:
            raise ValueError(f"a pull's heartbeat ({heartbeat_s} s) must be at most half its expiry ({expires_s} s)")
        self._client = client
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._batch = batch
        self._expires = expires_s
        self._heartbeat = heartbeat_s
        self._heard_at = 0.0  # when the request in flight (or the server about it) was last heard of
        self._buffer: list[tuple[str, bytes, str]] = []
        self._arrived = asyncio.Event()
        self._due = 0        # messages the request in flight may still bring
        self._asked_at = 0.0  # when it left: past its expiry (and a margin) it is over, answered or not
        self._problem: str | None = None
        self._inbox = ""
        self._subscription: Subscription | None = None

    async def open(self) -> None:
        self._inbox = self._client.new_inbox()  # under the client's inbox prefix (a store's own replies)
        self._subscription = await self._client.subscribe(self._inbox, cb=self._on_message, pending_msgs_limit=0,
                                                          pending_bytes_limit=0)

    def _in_flight(self) -> bool:
        return self._due > 0 and time.monotonic() - self._asked_at < self._expires + 1.0

    def _silent(self) -> bool:
        """The request in flight has missed two heartbeats: the server lost it."""
        return (self._heartbeat is not None and self._in_flight()
                and time.monotonic() - self._heard_at > 2 * self._heartbeat + 1.0)

    async def _ask(self) -> None:
        self._due = self._batch
        self._asked_at = self._heard_at = time.monotonic()
        request = {"batch": self._batch, "expires": int(self._expires * 1e9)}
        if self._heartbeat is not None:
            request["idle_heartbeat"] = int(self._heartbeat * 1e9)
        await self._client.publish(self._next, json.dumps(request).encode(), reply=self._inbox)

    async def _on_message(self, msg: Msg) -> None:
        self._heard_at = time.monotonic()
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:  # kept as plain values: the Msg (and its link to the client) goes at once
            self._buffer.append((msg.subject, msg.data, msg.reply))
            self._due -= 1
        elif status in ENDED:
            self._due = 0
        elif status != "100":  # 100: a heartbeat
            description = msg.headers.get("Description", "") if msg.headers else ""
            self._problem = f"the consumer answered {status} {description}".strip()
            self._due = 0
        if self._due == 0 and self._problem is None and len(self._buffer) < 4 * self._batch:
            await self._ask()
        self._arrived.set()

    async def take(self, timeout: float) -> list[Delivered]:
        """What arrived since the last take (waiting up to `timeout` for something); raises ConnectionError
        when the consumer is gone (deleted, its stream rebuilt), its open pull went silent or the connection
        was lost."""
        if not self._client.is_connected:
            raise ConnectionError("the connection to NATS was lost")
        if self._problem is not None and not self._buffer:
            raise ConnectionError(self._problem)
        if self._silent() and not self._buffer:
            raise ConnectionError(f"the open pull went silent (no heartbeat for {time.monotonic() - self._heard_at:.0f}"
                                  f" s: the server lost it)")
        if not self._in_flight() and len(self._buffer) < 4 * self._batch:
            await self._ask()
        if not self._buffer:
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return []
        if self._in_flight() and len(self._buffer) < self._batch:
            await asyncio.sleep(LINGER_S)
        taken, self._buffer = self._buffer, []
        self._arrived.clear()
        return [delivered(*message) for message in taken]

    async def close(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:  # the connection is gone: so is the subscription
                pass
