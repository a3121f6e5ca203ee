"""The NATS authorization of the hub's server: one NKEY user for the hub, one per active store.

Plain nats-server config has no permission templates (those exist only for JWT users), so each store
gets its own block, generated here from the store records: a pure function from (the hub's public key,
the active stores) to the text of an `authorization { ... }` block that the server config `include`s.
`install` writes it atomically and makes the server reload it; a reload disconnects the users it no
longer lists (a revoked store) and applies changed permissions to the connected ones. With the server's
monitoring known ([nats] monitor_url) it returns only once the server shows it reloaded (its /varz
config_load_time moved on), so a store just added logs in and a store just revoked is refused from then on.

A store user (tenant t, store s) may publish only its own events and requests, `novapos.t.s.evt.>` and
`novapos.t.s.req.>` (JetStream's PubAck comes back on its inbox, no API permission needed), and read its
tenant's catalog stream `CATALOG_t` through exactly the JetStream API calls that an ordered push consumer
or a pull consumer makes on that one stream; it may subscribe only under its own inbox prefix
`_INBOX.t.s` (the link connects with that prefix), so no store reads another's replies or deliveries,
to its own staff list's subject `novapos.t.s.staff` (novapos.wire.staff), so no store receives the PIN
verifiers of another store's people, and to its own payment events `novapos.t.s.pay.*` (novapos.wire.payments),
so no store learns of another's payments.
Nothing lets a store create, change, purge or delete a stream.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from novapos.adapters.nats import store_inbox_prefix
from novapos.wire.catalog import catalog_stream
from novapos.wire.leaf import HUB_API, leaf_api, leaf_events_stream, mirror_deliver_prefix, source_deliver_prefix
from novapos.wire.payments import payment_events_subject
from novapos.wire.staff import staff_subject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreUser:
    tenant: str
    store: str
    nkey_public: str
    leaf: bool = False
    """The store runs its own nats-server, a leaf node (novapos.leaf), which logs in with this key."""


def store_permissions(tenant: str, store: str) -> dict[str, dict[str, list[str]]]:
    """What one store's user may publish and subscribe to; everything else NATS refuses."""
    stream = catalog_stream(tenant)
    api = "$JS.API"
    publish = [
        f"novapos.{tenant}.{store}.evt.>",            # its events (JetStream answers on its inbox)
        f"novapos.{tenant}.{store}.req.>",            # its requests to the hub
        f"{api}.STREAM.INFO.{stream}",                # the catalog stream, read only:
        f"{api}.CONSUMER.CREATE.{stream}",            # an ephemeral consumer (older servers' form)
        f"{api}.CONSUMER.CREATE.{stream}.>",          # a named consumer, with or without its filter
        f"{api}.CONSUMER.INFO.{stream}.>",
        f"{api}.CONSUMER.DELETE.{stream}.>",          # its own consumers, when an ordered one resets
        f"{api}.CONSUMER.MSG.NEXT.{stream}.>",        # a pull consumer's fetch
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",                         # flow control replies of a push consumer
    ]
    subscribe = [f"{store_inbox_prefix(tenant, store)}.>", staff_subject(tenant, store),
                 payment_events_subject(tenant, store)]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def leaf_permissions(tenant: str, store: str) -> dict[str, dict[str, list[str]]]:
    """What a store's leaf node may carry across its leaf connection. NATS reads a leaf user's permissions
    from the hub's side: `publish` is what the leaf may export to the hub, `subscribe` what the hub may send
    into the leaf. Exports: the store's requests; the catalog mirror's calls to the hub's JetStream API
    (`$JS.hub.API`, the catalog stream only) and its flow control replies; the local events stream's
    answers to the hub's sourcing. Not the store's events themselves: the hub's events stream would capture
    them directly besides sourcing them (duplicates). Imports: replies to the store's inbox, its staff list
    and payment events, the hub's sourcing calls to the store's own JetStream domain, the catalog mirror's
    deliveries and the sourcing consumer's flow control."""
    stream = catalog_stream(tenant)
    hub_api = HUB_API
    publish = [
        f"novapos.{tenant}.{store}.req.>",
        f"{hub_api}.STREAM.INFO.{stream}",
        f"{hub_api}.CONSUMER.CREATE.{stream}",
        f"{hub_api}.CONSUMER.CREATE.{stream}.>",
        f"{hub_api}.CONSUMER.DELETE.{stream}.>",
        f"$JS.FC.{stream}.>",
        f"{source_deliver_prefix(tenant, store)}.>",  # the sourcing consumer's deliveries: its own store's only
        "$JSC.R.>",     # answers to the hub's JetStream API calls (without it sourcing never starts, silently; the
                        # server's reply subject has no per-source prefix: fleet-wide, see README's known limits)
    ]
    subscribe = [f"{store_inbox_prefix(tenant, store)}.>", staff_subject(tenant, store),
                 payment_events_subject(tenant, store), f"{leaf_api(tenant, store)}.>",
                 f"$JS.FC.{leaf_events_stream(tenant, store)}.>",
                 f"{mirror_deliver_prefix(tenant, store)}.>",  # its catalog mirror's deliveries (its own prefix)
                 "$JSC.R.>"]    # answers to the mirror's calls to the hub's JetStream API (fleet-wide, as above)
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def authorization(hub_public: str, stores: Iterable[StoreUser]) -> str:
    """The server's `authorization` block: the hub's user with every right, then one user per store.
    Never without a user (the hub's is always there): an empty block would let anyone in."""
    def user(nkey: str, comment: str, permissions: object | None = None, kind: str = "STANDARD") -> str:
        fields = [f"nkey: {json.dumps(nkey)}"]
        if permissions is not None:
            fields.append(f"permissions: {json.dumps(permissions)}")
        fields.append(f"allowed_connection_types: [{json.dumps(kind)}]")
        return f"    # {comment}\n    {{{', '.join(fields)}}}\n"
    users = [user(hub_public, "the hub")]
    users += [user(s.nkey_public, f"store {s.tenant}/{s.store}, its leaf node", leaf_permissions(s.tenant, s.store),
                   "LEAFNODE") if s.leaf else
              user(s.nkey_public, f"store {s.tenant}/{s.store}", store_permissions(s.tenant, s.store))
              for s in sorted(stores, key=lambda s: (s.tenant, s.store))]
    return ("# Generated by novapos (hub.tenancy.nats_auth) from the hub's store records: do not edit,\n"
            "# run `novapos hub store add|rotate|revoke` instead.\n"
            f"authorization {{\n  users: [\n{''.join(users)}  ]\n}}\n")


def write_atomically(path: Path, text: str) -> bool:
    """Replace `path` with `text` (rename over it: the server never reads half a file); False if unchanged."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    return True


class ReloadFailed(Exception):
    """The server could not be told to reload, or did not; the sentence says what to do."""


RELOAD_CONFIRM_S = 10.0
"""How long `install` waits for the server to show that it reloaded. A reload takes milliseconds, a second or two on
a host losing its CPU to steal; past this the server is not reloading (a config it cannot load, a wrong pid file)."""
RELOAD_POLL_S = 0.05
"""Between two reads of the server's /varz while waiting for the reload."""


def _load_time(monitor_url: str, timeout: float) -> str | Exception:
    """When the server last loaded its config (/varz config_load_time, changed by every reload), or why its
    monitoring did not say."""
    try:
        response = httpx.get(f"{monitor_url.rstrip('/')}/varz", timeout=timeout)
        response.raise_for_status()
        return str(response.json()["config_load_time"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return exc


def reload_server(pid_file: Path, monitor_url: str = "") -> bool:
    """Ask the nats-server whose pid is in `pid_file` to reload its config (SIGHUP, what `nats-server --signal
    reload` sends); with `monitor_url` (its monitoring), wait until it has. True once confirmed, False when there
    is no monitoring to ask; ReloadFailed, saying what to do, when it could not be told or did not reload in time."""
    by_hand = f"`nats-server --signal reload={pid_file}`"
    before = _load_time(monitor_url, RELOAD_CONFIRM_S) if monitor_url else None
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise ReloadFailed(f"cannot signal the nats-server of pid file {pid_file} ({exc}): reload it by hand "
                           f"({by_hand}) or check [nats] pid_file") from None
    if before is None:
        return False
    if isinstance(before, Exception):
        raise ReloadFailed(f"nats-server was told to reload, but its monitoring at {monitor_url} does not answer "
                           f"({type(before).__name__}: {before}), so the reload is not confirmed: check [nats] "
                           "monitor_url (nats-server's `http` listener) and nats-server's log")
    deadline = time.monotonic() + RELOAD_CONFIRM_S
    while True:
        now = _load_time(monitor_url, max(0.5, deadline - time.monotonic()))
        if isinstance(now, str) and now != before:
            return True
        if time.monotonic() >= deadline:
            raise ReloadFailed(f"nats-server did not reload within {RELOAD_CONFIRM_S:.0f} s of being told to (its "
                               f"monitoring at {monitor_url} still says config loaded at {before}; pid file "
                               f"{pid_file}): the authorization is written but not in force. Check nats-server's "
                               f"log (a config it cannot load keeps the old one) and [nats] pid_file, then {by_hand}")
        time.sleep(RELOAD_POLL_S)


def install(path: Path, text: str, pid_file: Path | None, monitor_url: str = "") -> bool:
    """Write the authorization and, when it changed and a pid file is set, reload the server (confirmed through
    `monitor_url` when given, see reload_server). True if changed."""
    changed = write_atomically(path, text)
    if changed and pid_file is not None:
        if reload_server(pid_file, monitor_url):
            log.info("NATS authorization rewritten at %s and the server reloaded it", path)
        else:
            log.warning("NATS authorization rewritten at %s and the server told to reload, unconfirmed: set [nats] "
                        "monitor_url (nats-server's monitoring) for store commands to wait until it has", path)
    elif changed:
        log.warning("NATS authorization rewritten at %s, no [nats] pid_file set: reload nats-server yourself "
                    "(`nats-server --signal reload`) for it to apply", path)
    return changed
