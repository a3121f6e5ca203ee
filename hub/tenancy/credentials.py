"""NKEY credentials: a store's or the hub's NATS identity is an Ed25519 key pair.

The seed (`SU...`) signs the server's nonce at connect and lives only in the credentials file of the
box that connects with it (mode 0600); the server's config holds the public key (`U...`) alone, so
the hub's NATS never stores anything that lets someone log in as a store.
"""

from __future__ import annotations

import os
import pwd
import secrets
from pathlib import Path

import nkeys


def new_seed() -> str:
    """A fresh user seed from the OS's cryptographic randomness."""
    return bytes(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)).decode()


def public_key(seed: str) -> str:
    """The public key (`U...`) that the server config names for a seed; ValueError for a malformed seed."""
    try:
        return bytes(nkeys.from_seed(bytearray(seed.strip().encode())).public_key).decode()
    except Exception as exc:  # nkeys raises its own error types and binascii's
        raise ValueError(f"not an NKEY user seed ({type(exc).__name__})") from None


def read_seed(path: Path) -> str:
    """The seed in a credentials file, checked to be one (its public key is computed)."""
    seed = path.read_text().strip()
    public_key(seed)
    return seed


def write_seed(path: Path, seed: str, owner: str | None = None) -> None:
    """Write a credentials file readable by its owner alone, atomically (a half-written seed never
    exists); `owner` (a user name, when run as root) becomes its owner, as the service user must read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older partial file keeps its mode through O_CREAT
        os.write(fd, f"{seed}\n".encode())
        os.fsync(fd)
        if owner is not None:
            user = pwd.getpwnam(owner)
            os.fchown(fd, user.pw_uid, user.pw_gid)
    finally:
        os.close(fd)
    os.replace(partial, path)
