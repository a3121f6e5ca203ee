"""Our one use of nats-py: a connection that lives on the process's asyncio seam.

Every coroutine here runs on the seam's asyncio loop. Callers cross the seam once per batch
(a whole outbox batch published, a whole consumer batch fetched), never once per message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, StorageType, StreamConfig

from novapos import logs, tracing, validators
from novapos.config.hub import StreamLimits
from novapos.config.reading import too_open
from novapos.tls import EXPIRY
from novapos.validators import token
from novapos.wire.catalog import catalog_stream, catalog_subjects
from novapos.wire.subjects import EVENTS_FILTER, EVENTS_STREAM

log = logging.getLogger(__name__)


class _QuietTlsClose(logging.Filter):
    """nats-py's stream protocol asks asyncio to keep a TLS connection half-open at its end, which asyncio
    refuses with a warning on every close of a tls:// connection: noise in the journal, dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returning true from eof_received() has no effect when using ssl" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietTlsClose())

class TlsStripped(nats.errors.Error):
    """The server did not set up TLS on a link that requires it: nothing was sent (no CONNECT, no credentials)."""


class _TlsOnlyClient(Client):
    """A nats-py client that never sends CONNECT over a connection that is not TLS when `require_tls`.

    nats-py upgrades to TLS only when the server's INFO says tls_required: a man in the middle answering
    without it would otherwise get CONNECT (and the NKEY's signature of a nonce it chose) in clear, even
    with a tls:// URL and a TLS context. CONNECT is built right before it is written, on the first connect
    and on every reconnect: refusing there is refusing before a byte of it leaves."""

    def __init__(self, require_tls: bool) -> None:
        super().__init__()
        self._require_tls = require_tls

    def _connect_command(self) -> bytes:
        if self._require_tls and not _is_tls(self._transport):
            raise TlsStripped("nats: the server did not start TLS (its INFO does not require it) though this link "
                              "is configured for TLS: refusing to send credentials in clear (a NATS without TLS "
                              "or someone in the middle)")
        return super()._connect_command()


def _is_tls(transport: Any) -> bool:
    writer = getattr(transport, "_io_writer", None)
    return writer is not None and writer.get_extra_info("ssl_object") is not None


INGEST_CONSUMER = "hub-ingest"
SHIPPED_LIMITS = StreamLimits()


@dataclass(frozen=True)
class Outgoing:
    """One event to publish, with the id JetStream deduplicates it by (see `msg_id`)."""
    event_id: str
    subject: str
    payload: bytes
    traceparent: str | None = None
    """The trace context of the event's commit (novapos.tracing): its publish is a span under it."""

    @property
    def msg_id(self) -> str:
        """The Nats-Msg-Id: the event id scoped by its subject (tenant, store, type). A bare event id
        would let another store, publishing that id first, make JetStream drop this store's event as
        a duplicate, acknowledged and then deleted from the outbox, a sale lost without a trace."""
        return f"{self.subject}:{self.event_id}"


@dataclass(frozen=True)
class Published:
    """What publishing a batch achieved: the ids JetStream acknowledged (a prefix of the batch,
    duplicates included: they are stored), and why it stopped before the end, if it failed:
    `refused` when the stream itself answered no (its limits, say), rather than not answering."""
    acked: list[str]
    failure: str | None = None
    refused: bool = False


def server_urls(url: str) -> list[str]:
    """The servers a NATS url names: one, or the members of a cluster separated by commas (checked:
    novapos.validators.nats_servers). A link connects to any of them and moves to another when it loses one."""
    return validators.nats_servers("the NATS url", url)


def store_inbox_prefix(tenant: str, store: str) -> str:
    """The inbox prefix a store's link connects with: the only subjects its NATS user may subscribe to are
    under it (hub.tenancy.nats_auth), so no store receives another's replies or deliveries."""
    return f"_INBOX.{token('tenant', tenant)}.{token('store', store)}"


class ReplicasRefused(nats.errors.Error):
    """NATS refused to give a stream the replicas configured: fewer servers with JetStream than replicas."""


class CredentialsError(Exception):
    """A credentials file this process must not use (readable by others, missing, not a seed)."""


def check_credentials(path: Path) -> Path:
    """A seed file fit to connect with: it exists and no one but its owner may read or write it (a seed
    readable by others lets them act as this store or hub). A LoadCredential= file's ACL (group read shown
    under $CREDENTIALS_DIRECTORY) is the service user's alone: accepted (novapos.config.reading.too_open)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise CredentialsError(f"cannot read the NATS credentials file {path}: {exc.strerror}") from None
    if too_open(path, mode):
        raise CredentialsError(f"the NATS credentials file {path} is open to group or others (mode "
                               f"{stat.S_IMODE(mode):04o}): make it readable by the service user alone "
                               f"(chmod 600 {path})")
    return path


@dataclass(frozen=True)
class Refusal:
    """NATS refused this link's credentials: at connect ("authorization violation", a revoked or unknown
    key) or on a publish or subscribe its permissions do not allow ("permissions violation", which at
    the publisher shows only as a timeout). A refusal lasts until the next login succeeds, a denial until the
    next acknowledged publish; meanwhile the edge's /healthz says it."""
    kind: str      # "refused" (cannot connect), "denied" (an operation not allowed), "unusable" (the file)
    detail: str

    def advice(self) -> str:
        if self.kind == "unusable":
            return self.detail
        if self.kind == "refused":
            return (f"NATS refuses this box's credentials ({self.detail}): the store was revoked or its "
                    f"credentials rotated; install the new credentials file (`novapos hub store rotate`)")
        return (f"NATS denied an operation to this box's credentials ({self.detail}): the store's permissions do "
                f"not cover it; check the store and tenant in its config against its credentials")


CATALOG_MAX_CONSUMERS = 20_000
"""Consumers a tenant's catalog stream allows. Every store follows it with one (two while it reopens its pull or
reads a snapshot); nats-server 2.15 caps a stream that sets no limit of its own at 1,000 (its
`jetstream.limits.default_max_consumers`), which left a tenant's 1,001st store without prices. 20,000 is four per
store at 5,000 stores (docs/scaling.md), and still a ceiling for a store that makes consumers in a loop."""


class NatsLink:
    """A nats-py client that reconnects on its own once it has connected the first time.

    `credentials`: the NKEY seed file it logs in with (checked: owner-only); `inbox_prefix`: where its
    replies and deliveries arrive; a store's user may subscribe under `_INBOX.<tenant>.<store>` only;
    `tls`: the context it verifies the server with and presents its certificate from (novapos.tls.Certificates
    reloads it in place: a reconnect uses the new certificate). With a tls:// URL or `require_tls` (the [tls]
    ca_file set: novapos.tls.Certificates.verifies_servers) the link is TLS or nothing: a server (or a man in
    the middle) whose INFO does not ask for TLS gets no CONNECT (TlsStripped). A nats:// URL with only a
    certificate configured (HTTPS on, a NATS on the box without TLS) still connects in clear, as configured."""

    def __init__(self, url: str, name: str, *, credentials: Path | None = None,
                 inbox_prefix: str | None = None, tls: ssl.SSLContext | None = None,
                 require_tls: bool = False) -> None:
        self.url = url
        self.servers = server_urls(url)
        self.tls = tls
        self.require_tls = require_tls or self.servers[0].lower().startswith("tls://")
        self.name = name
        self.credentials = credentials
        self.inbox_prefix = inbox_prefix
        self.refusal: Refusal | None = None
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._closing = False
        self._last_error: str | None = None  # why the last connection attempt failed, for the caller's log
        self._stripped_logged = False
        self._last_server: str | None = None
        self._more_replicas_said: set[str] = set()  # streams already warned to have more replicas than configured

    @property
    def server(self) -> str:
        """The server this link is connected to (of the several a cluster's url lists), as a log may show it;
        while it is not, the last one it was connected to (the whole list before the first)."""
        current = self._client.connected_url if self._client is not None else None
        if current is not None:
            self._last_server = logs.address(current.geturl())
        return self._last_server or logs.address(self.url)

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    def _auth_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {} if self.tls is None else {"tls": self.tls}
        if self.credentials is not None:
            options["nkeys_seed"] = str(check_credentials(self.credentials))
        if self.inbox_prefix is not None:
            options["inbox_prefix"] = self.inbox_prefix
        return options

    async def connect(self, timeout: float = 2.0) -> None:
        """Connect, or raise ConnectionError saying why within `timeout` s; callers decide when to try
        again. Once connected, the client reconnects on its own after a loss: meanwhile this raises
        at once (publishing into the client's buffer would only wait out a timeout)."""
        if self._client is not None and not self._client.is_closed:
            if self._client.is_connected:
                return
            raise ConnectionError(f"connection lost, reconnecting ({self._last_error or 'no answer yet'})")
        self._last_error = None
        try:
            options = self._auth_options()
        except CredentialsError as exc:  # before any attempt: no retry fixes a file's mode
            self._refused(Refusal("unusable", str(exc)))
            raise ConnectionError(str(exc)) from None
        client = _TlsOnlyClient(require_tls=self.require_tls)
        try:  # nats-py retries a first connect for ever when reconnecting is allowed: bound it
            options.update(name=self.name, connect_timeout=timeout, allow_reconnect=True,  # its hints say int: floats work
                           max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=self._on_error,
                           disconnected_cb=self._on_disconnected, reconnected_cb=self._on_reconnected)
            await asyncio.wait_for(client.connect(self.servers, **options), timeout)
            self._client = client
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            if isinstance(exc, nats.errors.AuthorizationError) or "authorization violation" in str(exc).lower():
                self._refused(Refusal("refused", "authorization violation"))
            raise ConnectionError(self._last_error or str(exc) or f"no answer within {timeout:g} s") from exc
        self._stripped_logged = False
        self._js = self._client.jetstream()
        _record_server_expiry(self._client)
        if self.refusal is not None and self.refusal.kind == "refused":
            log.info("NATS accepts this box's credentials again")
            self.refusal = None
        log.info("connected to NATS at %s as %s", self.server, self.name)

    def _refused(self, refusal: Refusal) -> None:
        """Remember the refusal; log it once per kind (a hammering retry must not flood the log)."""
        if self.refusal is None or self.refusal.kind != refusal.kind:
            log.error("%s", refusal.advice())
        self.refusal = refusal

    async def _on_error(self, exc: Exception) -> None:
        text = (str(exc) or type(exc).__name__).lower()
        if not ("authorization violation" in (self._last_error or "").lower() and "broken pipe" in text):
            # over TLS the server's refusal is followed by the closed connection's broken pipe: keep the reason
            self._last_error = str(exc) or type(exc).__name__
        if isinstance(exc, nats.errors.AuthorizationError) or "authorization violation" in text:
            self._refused(Refusal("refused", "authorization violation"))
        elif isinstance(exc, TlsStripped) and not self._stripped_logged:  # once until a good connect (retries)
            self._stripped_logged = True
            log.error("NATS at %s: %s", logs.address(self.url), str(exc).removeprefix("nats: "))
        elif "permissions violation" in text:
            self._refused(Refusal("denied", (str(exc) or type(exc).__name__).removeprefix("nats: ")))
        log.debug("NATS client error (%s): %s", self.name, exc)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        others = f" (to any of {logs.address(self.url)})" if len(self.servers) > 1 else ""
        log.info("lost the connection to NATS at %s; reconnecting in the background%s", self.server, others)

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS at %s", self.server)
        self._stripped_logged = False
        if self._client is not None:
            _record_server_expiry(self._client)
        if self.refusal is not None and self.refusal.kind == "refused":
            log.info("NATS accepts this box's credentials again")
            self.refusal = None

    @property
    def client(self) -> Client:
        """The connected client, for what the link does not wrap (request/reply subscriptions)."""
        if self._client is None:
            raise ConnectionError("not connected to NATS")
        return self._client

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise ConnectionError("not connected to NATS")
        return self._js

    async def ensure_event_stream(self, limits: StreamLimits = SHIPPED_LIMITS) -> None:
        """Create the events stream if it is missing: file storage, `limits`, dedup on Nats-Msg-Id, and
        discard=new: a full stream refuses publishes (the store keeps them in its outbox and retries) rather
        than dropping its oldest events, which may be sales the hub has not applied yet. A stream that exists
        is left as it is: its limits are the operator's, and a hub rewriting them on every start would undo the
        operator's changes; one that discards old events is warned about. Its replicas alone follow
        `limits.replicas` upward (see _scale_up)."""
        try:
            existing = (await self.js.stream_info(EVENTS_STREAM)).config
        except nats.js.errors.NotFoundError:
            await self._add_stream(StreamConfig(
                name=EVENTS_STREAM, subjects=[EVENTS_FILTER], storage=StorageType.FILE,
                max_age=limits.max_age_days * 86400, max_bytes=limits.max_bytes, num_replicas=limits.replicas,
                duplicate_window=limits.duplicate_window_s, discard=DiscardPolicy.NEW,
            ))
            log.info("created the %s stream: events kept %d days, at most %d bytes, %d replica(s)",
                     EVENTS_STREAM, limits.max_age_days, limits.max_bytes, limits.replicas)
            return
        bounded = (existing.max_bytes or -1) >= 0 or (existing.max_msgs or -1) >= 0
        if bounded and existing.discard != DiscardPolicy.NEW:
            log.warning("the %s stream drops its oldest events when full (discard=old): a hub that falls that far "
                        "behind loses sales it has not applied. Set discard=new (`nats stream edit %s "
                        "--discard new`): stores then keep events in their outbox until there is room",
                        EVENTS_STREAM, EVENTS_STREAM)
        if not existing.max_age and (existing.max_bytes or -1) < 0 and (existing.max_msgs or -1) < 0:
            log.warning("the %s stream has no age, size or count limit and grows for ever; set them with "
                        "`nats stream edit %s` (the hub changes only an existing stream's replicas)",
                        EVENTS_STREAM, EVENTS_STREAM)
        await self._scale_up(existing, limits.replicas)

    async def ensure_catalog_stream(self, tenant: str, replicas: int = 1) -> None:
        """Create the tenant's catalog stream if it is missing (novapos.wire.catalog): file storage, only the
        last message of each subject kept, so a store catching up reads what changed, not the history;
        CATALOG_MAX_CONSUMERS consumers; `replicas` copies on a cluster (the hub's [stream] replicas). An existing
        stream is scaled up to them, and raised to CATALOG_MAX_CONSUMERS (never lowered: a higher limit is the
        operator's)."""
        name = catalog_stream(tenant)
        try:
            existing = (await self.js.stream_info(name)).config
        except nats.js.errors.NotFoundError:
            await self._add_stream(StreamConfig(
                name=name, subjects=[catalog_subjects(tenant)], storage=StorageType.FILE, num_replicas=replicas,
                max_msgs_per_subject=1, discard=DiscardPolicy.OLD, allow_rollup_hdrs=True,
                max_consumers=CATALOG_MAX_CONSUMERS))
            log.info("created the %s stream: the last message of each catalog subject, %d replica(s), up to %d "
                     "consumers", name, replicas, CATALOG_MAX_CONSUMERS)
            return
        if (had := existing.max_consumers or -1) < CATALOG_MAX_CONSUMERS:
            existing = dataclasses.replace(existing, max_consumers=CATALOG_MAX_CONSUMERS)
            await self._add_stream(existing, update=True)
            log.info("raised the %s stream's consumer limit from %s to %d: every store follows it with a consumer "
                     "of its own", name, "the server's default" if had <= 0 else had, CATALOG_MAX_CONSUMERS)
        await self._scale_up(existing, replicas)

    async def _add_stream(self, config: StreamConfig, *, update: bool = False) -> None:
        """Create (or `update`) a stream; NATS refusing the replicas is said in words an operator acts on."""
        try:
            await (self.js.update_stream(config) if update else self.js.add_stream(config))
        except nats.js.errors.APIError as exc:
            if (config.num_replicas or 1) == 1:
                raise
            raise ReplicasRefused(f"NATS refuses {config.num_replicas} replicas for the {config.name} stream "
                                  f"({exc.description or exc}): a cluster needs at least as many servers with "
                                  f"JetStream as [stream] replicas; lower it or add servers") from None

    async def _scale_up(self, existing: StreamConfig, replicas: int) -> None:
        """A stream with fewer replicas than configured gets them (a server-side update: the cluster copies the
        stream to the new peers while it keeps serving); one with more keeps them, said once per link, since
        dropping copies is an operator's decision, never the hub's."""
        have, name = existing.num_replicas or 1, str(existing.name)
        if have < replicas:
            await self._add_stream(dataclasses.replace(existing, num_replicas=replicas), update=True)
            log.info("scaled the %s stream up from %d to %d replicas ([stream] replicas); the new copies catch up "
                     "in the background (`nats stream info %s` shows them current)", name, have, replicas,
                     name)
        elif have > replicas and name not in self._more_replicas_said:
            self._more_replicas_said.add(name)
            log.warning("the %s stream has %d replicas, more than [stream] replicas = %d: left as it is (the hub "
                        "never removes copies); if fewer are meant, `nats stream edit %s --replicas %d`",
                        name, have, replicas, name, replicas)

    async def publish_batch(self, batch: list[Outgoing], timeout: float) -> Published:
        """Publish in order, each after the previous one's PubAck, and stop at the first failure, so
        that no event reaches the stream before one published ahead of it (per-store order at the
        hub). Each publish waits at most `timeout`; none starts after `timeout` has passed, so a slow
        server yields the acknowledged prefix rather than a caller's timeout."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        acked: list[str] = []
        for item in batch:
            if loop.time() - started > timeout:
                break
            try:
                with tracing.publishing(item.subject, item.event_id, item.traceparent) as headers:
                    await self.js.publish(item.subject, item.payload, timeout=timeout,
                                          headers={**headers, "Nats-Msg-Id": item.msg_id})
            except nats.js.errors.APIError as exc:  # the stream's own refusal (its limits, say), or busy (503)
                refused = not isinstance(exc, nats.js.errors.ServiceUnavailableError)
                return Published(acked, f"event {item.event_id}: {exc.description or exc}", refused=refused)
            except Exception as exc:  # timeouts, no responders (no stream yet), disconnects
                return Published(acked, str(exc) or type(exc).__name__)
            acked.append(item.event_id)
        if acked and self.refusal is not None and self.refusal.kind == "denied":
            self.refusal = None  # publishing works again (the store's permissions were fixed)
        return Published(acked)

    async def ingest_subscription(self, batch: int) -> JetStreamContext.PullSubscription:
        """The hub's shared durable pull consumer: N hub processes split the stream between them."""
        return await self.js.pull_subscribe(
            EVENTS_FILTER, durable=INGEST_CONSUMER, stream=EVENTS_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, max_ack_pending=batch * 8),
        )

    async def close(self) -> None:
        """Flush and close, whatever state the connection is in: a stop must succeed with NATS away (closing
        a lost connection raises ConnectionResetError and the like, which is only logged). No drain: every
        publish of ours already awaited its PubAck, every fetched message was acked or nak'ed, and draining
        a pull subscription only waits out its timeout."""
        self._closing = True
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            try:
                await client.flush(timeout=1)
            except Exception as exc:  # disconnected: nothing left to flush
                log.debug("flush before close: %s", exc)
            try:
                await client.close()
            except Exception as exc:
                log.debug("closing a lost NATS connection: %s", exc)
        self._closing = False


def _record_server_expiry(client: Client) -> None:
    """The NATS server's certificate end, from the handshake just made, in the expiry gauge (use=nats_server).
    nats-py does not expose its TLS connection: its transport's stream writer does (none on plain TCP)."""
    writer = getattr(getattr(client, "_transport", None), "_io_writer", None)
    peer = writer.get_extra_info("peercert") if writer is not None else None
    if peer and "notAfter" in peer:
        EXPIRY.labels("nats_server").set(ssl.cert_time_to_seconds(peer["notAfter"]))


async def fetch(subscription: JetStreamContext.PullSubscription, batch: int, timeout: float) -> list[Msg]:
    """A batch of messages, or an empty list when none came within `timeout`. nats-py signals "nothing
    came" with its own TimeoutError or, on some paths, a bare asyncio one: both are an idle stream."""
    try:
        return await subscription.fetch(batch, timeout=timeout)
    except TimeoutError:  # nats.errors.TimeoutError and asyncio.TimeoutError alike
        return []
