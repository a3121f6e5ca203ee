"""A store box's own nats-server, a leaf node of the hub's NATS with a JetStream domain of its own.

The edge then talks to NATS on its own box only: its forwarder publishes into a local stream
(`leaf_events_stream`, subjects `novapos.<tenant>.<store>.evt.>`) and gets its PubAck from the box, so
selling and forwarding carry on while the WAN or the hub is away; the hub's events stream *sources* that
local stream through the store's domain (`$JS.<domain>.API`, hub.ingest.leaf_sources) and catches up when
the link is back. The tenant's catalog stream is *mirrored* down into the same name (`CATALOG_<tenant>`,
sequence numbers kept), so the edge's catalog sync reads it locally exactly as it reads the hub's.

Requests to the hub (stock, staff, health), their replies and the hub's pushes (staff list, payment events)
cross the leaf connection as plain NATS traffic; the hub's authorization lets the leaf's user export only
those and the JetStream traffic of sourcing and mirroring (hub.tenancy.nats_auth.leaf_permissions). The
store's events are *not* exported: the hub's stream would capture them directly besides sourcing them.

The leaf listens on loopback only, TLS off (it never leaves the box), and lets in one user: the store's own
NKEY, the same seed it logs in to the hub with (the config holding it is written owner-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Self

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, ExternalStream, StorageType, StreamConfig, StreamSource

from hub.tenancy.credentials import public_key, read_seed
from novapos import logs
from novapos.adapters.nats import NatsLink, check_credentials, store_inbox_prefix
from novapos.config import StoreConfig
from novapos.config.hub import LEAF_STREAM_MAX_AGE_DAYS, StreamLimits
from novapos.config.leaf import LeafSettings
from novapos.demo.embedded_nats import nats_server_binary
from novapos.demo.processes import EmbeddedServer, ManagedProcess, free_port
from novapos.tls import TlsSettings
from novapos.wire.catalog import catalog_stream
from novapos.wire.leaf import (
    HUB_API,
    HUB_DOMAIN,
    leaf_events_stream,
    leaf_name,
    mirror_deliver_prefix,
    store_events_filter,
)

log = logging.getLogger(__name__)

LEAF_LIMITS = StreamLimits(max_age_days=LEAF_STREAM_MAX_AGE_DAYS, max_bytes=2 * 1024**3)
"""The local events stream's: what a store box keeps while the hub cannot source it (a month of a busy store
is far below 2 GiB); full, it refuses and the outbox keeps the sales, as with the hub's stream."""


def leaf_config(tenant: str, store: str, settings: LeafSettings, seed: str, tls: TlsSettings,
                pid_file: Path) -> str:
    """The leaf's nats-server config: loopback listener with the store's key as its only user, JetStream in the
    store's domain, one remote (the hub), logged in with the store's seed, over TLS as the store's [tls] says
    (the hub's certificate checked against its ca_file; its own certificate shown when it has one)."""
    urls = [url.strip() for url in settings.hub_url.split(",") if url.strip()]
    remote: dict[str, object] = {"urls": urls, "nkey": seed}
    files = {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file}
    if any(files.values()):
        remote["tls"] = {key: str(path) for key, path in files.items() if path is not None}
    lines = [f"listen: {json.dumps(f'127.0.0.1:{settings.port}')}",
             f"server_name: {json.dumps('leaf-' + leaf_name(tenant, store))}",
             f"pid_file: {json.dumps(str(pid_file))}",
             f"jetstream {{ store_dir: {json.dumps(str(settings.state_dir / 'jetstream'))}, "
             f"domain: {json.dumps(leaf_name(tenant, store))} }}",
             f"authorization {{ users: [ {{ nkey: {json.dumps(public_key(seed))} }} ] }}",
             f"leafnodes {{ remotes: [ {json.dumps(remote)} ] }}"]
    return "\n".join(lines) + "\n"


async def ensure_leaf_streams(js: JetStreamContext, tenant: str, store: str,
                              limits: StreamLimits = LEAF_LIMITS) -> None:
    """(asyncio side, on the leaf) The local events stream and the catalog mirror, created when missing;
    existing ones are left as they are (their data is what the hub has not sourced yet)."""
    events = leaf_events_stream(tenant, store)
    try:
        await js.stream_info(events)
    except nats.js.errors.NotFoundError:
        await js.add_stream(StreamConfig(
            name=events, subjects=[store_events_filter(tenant, store)], storage=StorageType.FILE,
            max_age=limits.max_age_days * 86400, max_bytes=limits.max_bytes, discard=DiscardPolicy.NEW,
            duplicate_window=limits.duplicate_window_s))
        log.info("created the local events stream %s (the hub sources it): kept %d days, at most %d bytes",
                 events, limits.max_age_days, limits.max_bytes)
    await ensure_catalog_mirror(js, tenant, store)


async def ensure_catalog_mirror(js: JetStreamContext, tenant: str, store: str) -> None:
    """(asyncio side, on the leaf) The tenant's catalog stream as a mirror of the hub's, delivered on the store's own
    prefix (the only one the hub lets this leaf receive: hub.tenancy.nats_auth.leaf_permissions); created when
    missing, re-created when an earlier release made it on the fleet-wide prefix (it copies the catalog again)."""
    catalog = catalog_stream(tenant)
    deliver = mirror_deliver_prefix(tenant, store)
    try:
        mirror = (await js.stream_info(catalog)).config.mirror
        if mirror is not None and mirror.external is not None and mirror.external.deliver == deliver:
            return
        await js.delete_stream(catalog)
        log.info("re-creating the catalog mirror %s on the store's own deliver prefix %s", catalog, deliver)
    except nats.js.errors.NotFoundError:
        pass
    await js.add_stream(StreamConfig(
        name=catalog, storage=StorageType.FILE, max_msgs_per_subject=1,
        mirror=StreamSource(name=catalog, external=ExternalStream(api=HUB_API, deliver=deliver))))
    log.info("created the local catalog mirror %s of the hub's", catalog)


class CatalogMirrorWatch:
    """Re-creates the catalog mirror when it is stuck: after a WAN outage the leaf's nats-server retries a mirror only
    after 10 s x its failures so far, at most every 2 minutes, so a price change could wait that long after the
    link is back. Stuck = the hub answers and holds more than the mirror, and the mirror has not moved since the
    previous check (`check` runs every [leaf] check_every_s). A re-created mirror copies the hub's stream again
    (one message per subject: the catalog's size), keeping its sequence numbers; the edge's catalog sync
    resumes after the last one it applied."""

    def __init__(self, tenant: str, store: str) -> None:
        self.tenant, self.store = tenant, store
        self._behind_at: int | None = None  # the mirror's last sequence when it was last seen behind the hub's

    async def check(self, link: NatsLink) -> bool:
        """(asyncio side, on the leaf as the store) One check; True if the mirror was re-created."""
        name = catalog_stream(self.tenant)
        local = (await link.js.stream_info(name)).state.last_seq
        try:
            hub = (await link.client.jetstream(domain=HUB_DOMAIN, timeout=2.0).stream_info(name)).state.last_seq
        except Exception:  # the hub is away: nothing to catch up with yet
            self._behind_at = None
            return False
        if hub <= local or self._behind_at != local:  # caught up; or behind for the first time, or moving
            self._behind_at = None if hub <= local else local
            return False
        self._behind_at = None
        await link.js.delete_stream(name)
        await ensure_catalog_mirror(link.js, self.tenant, self.store)
        log.info("re-created the catalog mirror %s: it stayed at sequence %d while the hub holds up to %d",
                 name, local, hub)
        return True


class LeafNode(EmbeddedServer):
    """The store's leaf nats-server as a child process, restartable on the same port and data. start() writes
    its config (owner-only: it holds the seed) and waits for the port; `ensure_streams()` then makes the
    local streams (the edge may publish before that: its outbox retries until the stream answers)."""

    def __init__(self, tenant: str, store: str, settings: LeafSettings, credentials: Path,
                 tls: TlsSettings | None = None) -> None:
        self.tenant, self.store = tenant, store
        self.host = "127.0.0.1"
        self.port = settings.port or free_port()
        self.settings = replace(settings, port=self.port)
        self.credentials = credentials
        self.tls = tls or TlsSettings()
        self.config_file = settings.state_dir / "leaf-server.conf"
        self.pid_file = settings.state_dir / "leaf-server.pid"
        self._server = ManagedProcess("leaf nats-server", [nats_server_binary(), "-c", str(self.config_file)],
                                      settings.state_dir / "leaf-server.log")

    @property
    def url(self) -> str:
        return self.settings.local_url

    def start(self, timeout: float = 20.0) -> Self:
        self.write_config()
        self._spawn_and_wait(timeout)
        return self

    def write_config(self) -> None:
        """The server's config, which holds the store's seed: the state dir made owner-only (0700, also when it
        existed), the file written owner-only (0600) beside it and renamed over the old one, whatever its mode was."""
        self.settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.settings.state_dir, 0o700)
        text = leaf_config(self.tenant, self.store, self.settings, read_seed(self.credentials), self.tls,
                           self.pid_file)
        partial = self.config_file.with_name(f".{self.config_file.name}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # a partial left by a crash keeps its mode: O_CREAT sets it only when creating
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, self.config_file)

    def link(self, name: str) -> NatsLink:
        """A link to the leaf as the store (what the edge uses in leaf mode): plain loopback, the store's key."""
        return NatsLink(self.url, name, credentials=self.credentials,
                        inbox_prefix=store_inbox_prefix(self.tenant, self.store))

    async def ensure_streams(self, limits: StreamLimits = LEAF_LIMITS) -> None:
        """(asyncio side) Connect as the store and make the local streams."""
        link = self.link(f"leaf-setup-{self.tenant}-{self.store}")
        await link.connect(timeout=5.0)
        try:
            await ensure_leaf_streams(link.js, self.tenant, self.store, limits)
        finally:
            await link.close()


class LeafUnusable(Exception):
    """The store config cannot run a leaf node; the sentence says what to set."""


def run_leaf(config: StoreConfig) -> int:
    """`novapos leaf`: the leaf nats-server as a child, the local streams made, the catalog mirror checked every
    [leaf] check_every_s, until SIGTERM/SIGINT (0) or the server's death (1: let systemd restart us)."""
    if config.leaf is None:
        raise LeafUnusable("no [leaf] table in the store config: set [leaf] hub_url (the hub's leafnode address)")
    if config.nats_credentials is None:
        raise LeafUnusable("no [nats] credentials in the store config: the leaf logs in to the hub with the store's "
                           "key (`novapos hub store add` wrote it)")
    check_credentials(config.nats_credentials)
    leaf = LeafNode(config.tenant, config.store, config.leaf, config.nats_credentials, config.tls).start()
    log.info("leaf node for store %s/%s listening on %s, connecting to the hub at %s", config.tenant, config.store,
             leaf.url, logs.address(config.leaf.hub_url))
    if config.leaf.allow_plaintext and not config.leaf.hub_url.startswith("tls://"):
        log.warning("the leaf link to the hub at %s is not TLS ([leaf] allow_plaintext): anyone on the path reads "
                    "the store's sales; use tls:// unless this network is trusted", logs.address(config.leaf.hub_url))
    try:
        return asyncio.run(_keep(leaf, config.leaf.check_every_s))
    finally:
        leaf.stop()
        log.info("leaf node stopped")


async def _keep(leaf: LeafNode, every: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    link = leaf.link(f"leaf-{leaf.tenant}-{leaf.store}")
    mirror = CatalogMirrorWatch(leaf.tenant, leaf.store)
    ready = failing = False
    try:
        while not stop.is_set():
            if not leaf.running:
                log.error("the leaf nats-server exited (see %s): stopping so that the service restarts",
                          leaf.settings.state_dir / "leaf-server.log")
                return 1
            try:
                await link.connect()
                if not ready:
                    await ensure_leaf_streams(link.js, leaf.tenant, leaf.store)
                    ready = True
                await mirror.check(link)
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("cannot set up or check the leaf's streams (%s: %s); retrying every %g s",
                                type(exc).__name__, exc, every)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every if ready else 1.0)
        return 0
    finally:
        await link.close()
