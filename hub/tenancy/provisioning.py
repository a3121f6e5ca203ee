"""Provisioning a store end to end: its record, a fresh NKEY, the NATS authorization regenerated from the
records (and the server reloaded), and the config bundle its box needs (store.toml and the seed file; with
TLS the CA certificate and, issued from a local CA, the store's own certificate and key).

The seed exists in exactly one place, the bundle (mode 0600, owned by the service user when `owner` is
given): the hub keeps the public key only. The authorization is always regenerated from every active
store, never patched, so the file on disk is a function of the records. Provisioning, rotating and revoking
are privileged: each commits with its audit record (store.provisioned, store.credentials_rotated,
store.revoked; store.leaf_on / store.leaf_off for its leaf flag) naming `actor` (`cli:<os user>` from the
command line).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import tomli_w

from hub.audit.chain import Entry, record
from hub.partitions import Retention
from hub.tenancy import service
from hub.tenancy.credentials import new_seed, public_key, read_seed, write_seed
from hub.tenancy.nats_auth import authorization, install
from hub.tenancy.service import TenancyError
from novapos import validators
from novapos.config import HubConfig
from novapos.local_ca import CA_CERT, issue
from novapos.tls import TlsSettings

CONFIG_FILE = "store.toml"
SEED_FILE = "store.seed"
AUTHORIZATION_LOCK = 0x6E6B6579  # "nkey": PostgreSQL advisory lock serialising authorization rewrites


@dataclass(frozen=True)
class StoreCertificates:
    """Where `store add` issues the store's TLS certificate: a local CA's folder (novapos.local_ca), and the
    names the store's box answers to on its LAN (its HTTPS for the tills)."""
    ca_dir: Path
    hosts: tuple[str, ...] = ()


NO_TLS = TlsSettings()


@dataclass(frozen=True)
class Bundle:
    """What the store's box needs, in one folder: copy it there as it is."""
    folder: Path
    config: Path
    credentials: Path


def hub_public_key(config: HubConfig) -> str:
    """The hub user's public key, from the hub's own seed file; TenancyError saying which setting is missing."""
    if config.nats_authorization is None:
        raise TenancyError("set [nats] authorization in the hub config: the file nats-server includes, which "
                           "store provisioning rewrites")
    if config.nats_credentials is None:
        raise TenancyError("set [nats] credentials in the hub config (or NOVAPOS_NATS_CREDENTIALS): the hub's "
                           "seed file, whose public key the authorization grants every right")
    try:
        return public_key(read_seed(config.nats_credentials))
    except (OSError, ValueError) as exc:
        raise TenancyError(f"cannot use the hub's credentials file {config.nats_credentials}: {exc}") from None


async def sync_authorization(conn: asyncpg.Connection, config: HubConfig) -> bool:
    """Regenerate the NATS authorization from the records and install it (reload, confirmed when [nats] monitor_url
    is set: see hub.tenancy.nats_auth.install); True if it changed.
    One at a time (a lock in PostgreSQL): each reads the records after the previous one has written, so two
    stores provisioned at once both end up in the file."""
    hub_public = hub_public_key(config)
    assert config.nats_authorization is not None  # hub_public_key checked it
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", AUTHORIZATION_LOCK)
        text = authorization(hub_public, await service.active_users(conn))
        return await asyncio.to_thread(install, config.nats_authorization, text, config.nats_pid_file,
                                       config.nats_monitor_url)


def _owned(path: Path, owner: str | None) -> None:
    if owner is not None:
        user = pwd.getpwnam(owner)
        os.chown(path, user.pw_uid, user.pw_gid)


def _check_owner(owner: str | None) -> None:
    if owner is None:
        return
    try:
        pwd.getpwnam(owner)
    except KeyError:
        raise TenancyError(f"there is no user {owner!r} on this machine to own the credentials") from None
    if os.geteuid() != 0:
        raise TenancyError("--owner needs root (only root gives a file away): run as root, or leave --owner out "
                           "and chown the bundle yourself")


def _bundle_tls(folder: Path, store: str, hub_tls: TlsSettings, certificates: StoreCertificates | None,
                on_box: Path, owner: str | None) -> dict[str, str]:
    """The store's [tls], its files in `folder` (`on_box`: that folder's path on the box): the CA the hub's
    [tls] ca_file names (the store verifies NATS with it) and, from `certificates`, the store's own
    certificate and key (its HTTPS for the tills, its identity to a NATS that verifies clients)."""
    table: dict[str, str] = {}
    ca_file = hub_tls.ca_file or (certificates.ca_dir / CA_CERT if certificates else None)
    if ca_file is not None:
        shutil.copyfile(ca_file, folder / CA_CERT)
        _owned(folder / CA_CERT, owner)
        table["ca_file"] = str(on_box / CA_CERT)
    if certificates is not None:
        made = issue(certificates.ca_dir, store, certificates.hosts or (store, "localhost", "127.0.0.1"), out=folder,
                     client=True)  # its HTTPS (server) and its identity to a NATS that verifies clients
        for path in (made.cert_file, made.key_file):
            _owned(path, owner)
        table.update(cert_file=str(on_box / made.cert_file.name), key_file=str(on_box / made.key_file.name))
    return table


def write_bundle(folder: Path, record: service.StoreRecord, currency: str, tills: Sequence[str], nats_url: str,
                 seed: str, *, owner: str | None = None, credentials_path: Path | None = None,
                 hub_tls: TlsSettings = NO_TLS, certificates: StoreCertificates | None = None) -> Bundle:
    """store.toml and the seed file in `folder` (created 0700), and with TLS the CA and the store's certificate
    (_bundle_tls). `credentials_path`: where the seed will be on the box, when not at this folder's path (the
    bundle is copied elsewhere; the TLS files go beside it)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _owned(folder, owner)
    seed_file = folder / SEED_FILE
    write_seed(seed_file, seed, owner)
    config = folder / CONFIG_FILE
    on_box = credentials_path.parent if credentials_path else folder.resolve()
    tls = _bundle_tls(folder, record.store, hub_tls, certificates, on_box, owner)
    config.write_text(tomli_w.dumps({
        "tenant": record.tenant, "store": record.store, "region": record.region, "currency": currency,
        "tills": list(tills),
        "nats": {"url": nats_url, "credentials": str(credentials_path or seed_file.resolve())},
        "state": {"dir": f".state/{record.store}"},
        **({"tls": tls} if tls else {}),
    }))
    _owned(config, owner)
    return Bundle(folder, config, seed_file)


async def provision_store(pool: asyncpg.Pool, config: HubConfig, tenant: str, store: str, region: str, name: str,
                          tills: Sequence[str], folder: Path, *, nats_url: str | None = None, owner: str | None = None,
                          credentials_path: Path | None = None, certificates: StoreCertificates | None = None,
                          actor: str = "system") -> Bundle:
    """Record the store, write its bundle, then let NATS know it. Nothing is recorded if the bundle cannot be
    written; a failed reload leaves the record and the file (the sentence says how to reload)."""
    for till in tills:
        validators.token("till", till)
    if not tills:
        raise TenancyError("a store needs at least one till (--tills till-1,till-2)")
    hub_public_key(config)  # every setting checked before anything is recorded
    _check_owner(owner)
    seed = new_seed()
    async with pool.acquire() as conn:
        async with conn.transaction():
            currency = await service.add_store(conn, tenant, store, region, name, public_key(seed))
            await record(conn, Entry(tenant, actor, "store.provisioned", store=store, target=store, details={
                "region": region, "name": name, "tills": list(tills), "nkey_public": public_key(seed)}))
            bundle = write_bundle(folder, await service.store(conn, tenant, store), currency, tills,
                                  nats_url if nats_url is not None else config.nats_url, seed,
                                  owner=owner, credentials_path=credentials_path, hub_tls=config.tls,
                                  certificates=certificates)
        await sync_authorization(conn, config)
    return bundle


async def rotate_store(pool: asyncpg.Pool, config: HubConfig, tenant: str, store: str, folder: Path, *,
                       owner: str | None = None, actor: str = "system") -> Path:
    """A new seed in `folder` (its store.seed); the old one is refused from the reload on. Returns the seed file."""
    hub_public_key(config)
    _check_owner(owner)
    seed = new_seed()
    async with pool.acquire() as conn:
        async with conn.transaction():
            rotated = await service.rotate(conn, tenant, store, public_key(seed))
            await record(conn, Entry(rotated.tenant, actor, "store.credentials_rotated", store=rotated.store,
                                     target=rotated.store, details={"nkey_public": rotated.nkey_public}))
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _owned(folder, owner)
            write_seed(folder / SEED_FILE, seed, owner)
        await sync_authorization(conn, config)
    return folder / SEED_FILE


async def revoke_store(pool: asyncpg.Pool, config: HubConfig, tenant: str, store: str, *,
                       actor: str = "system") -> None:
    """The store's user leaves the authorization: the reload disconnects it and it cannot log in again."""
    hub_public_key(config)
    async with pool.acquire() as conn:
        async with conn.transaction():
            revoked = await service.revoke(conn, tenant, store)
            await record(conn, Entry(revoked.tenant, actor, "store.revoked", store=revoked.store, target=revoked.store))
        await sync_authorization(conn, config)


async def set_store_leaf(pool: asyncpg.Pool, config: HubConfig, tenant: str, store: str, leaf: bool, *,
                         actor: str = "system") -> bool:
    """`novapos hub store leaf`: flag the store as running its own NATS leaf node (novapos.leaf), or not, audited
    (store.leaf_on / store.leaf_off); False if it already was so (nothing recorded). The authorization is rewritten
    either way: on, its user logs in as a leaf node only; off, as a plain client again. Every hub process's
    leaf_sources job reads the flag each round: on, the events stream sources the store's leaf within [leaf]
    check_every_s; off, its source stays (the leaf may still hold sales) until `novapos hub store unsource`."""
    hub_public_key(config)
    if leaf:
        try:
            Retention.of(config, leaf=True)
        except ValueError as exc:
            raise TenancyError(f"the hub's inbox must outlast a leaf store's local stream: {exc}. Raise it (or set "
                               "0) in every hub process's config first") from None
    async with pool.acquire() as conn:
        async with conn.transaction():
            changed = await service.set_leaf(conn, tenant, store, leaf)
            if changed is not None:
                await record(conn, Entry(changed.tenant, actor, "store.leaf_on" if leaf else "store.leaf_off",
                                         store=changed.store, target=changed.store))
        await sync_authorization(conn, config)
    return changed is not None
