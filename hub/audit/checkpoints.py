"""Signed checkpoints of each tenant's audit chain, written outside the database.

A checkpoint says "tenant T's chain had L records and its head hash was H", signed with the hub's Ed25519
key, as a C2SP signed note (https://c2sp.org/signed-note, the format of transparency logs' checkpoints):

    novapos/audit/<tenant>
    <length>
    <base64 head hash>

    — <key name> <base64 of key id (4 bytes) || Ed25519 signature (64 bytes)>

The signature covers the three text lines with their newlines. The key id is the first 4 bytes of
SHA-256(key name || "\\n" || 0x01 || public key), as C2SP defines for Ed25519. The public key is written
beside the checkpoints as a C2SP verifier key `<name>+<hex key id>+<base64 of 0x01 || public key>`.

Someone who can rewrite the database but not these files cannot rewrite the chain from some point on and
go unseen: the last checkpoint's record is no longer the one signed. Files are named by tenant and length
(`<dir>/<tenant>/<length, 12 digits>.note`) and written to a temporary file then renamed, so N hub
processes writing the same checkpoint at once write the same bytes to the same name: harmless.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from novapos import validators
from novapos.config.reading import too_open

log = logging.getLogger(__name__)

KEY_NAME = "novapos-hub"
PUBLIC_KEY_FILE = "checkpoint.pub"
_ED25519 = b"\x01"
_NAME = re.compile(r"^(\d{12})\.note$")
_SIGNATURE = re.compile(r"^\u2014 (\S+) ([A-Za-z0-9+/=]+)\n$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted: malformed, signed by another key, or forged; the text says which."""


@dataclass(frozen=True)
class Checkpoint:
    tenant: str
    length: int
    head: bytes
    path: Path | None = None

    @property
    def origin(self) -> str:
        return f"novapos/audit/{self.tenant}"

    def body(self) -> bytes:
        return f"{self.origin}\n{self.length}\n{base64.b64encode(self.head).decode()}\n".encode()


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """The C2SP verifier key text that names the key and holds its public half."""
    return f"{name}+{key_id(name, public_key).hex()}+{base64.b64encode(_ED25519 + public_key).decode()}"


def _write_new(folder: Path, name: str, data: bytes, mode: int) -> Path:
    """A temporary file in `folder` holding `data`, on disk (fsync), with `mode`; the caller moves it."""
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    with os.fdopen(handle, "wb") as file:
        os.fchmod(file.fileno(), mode)
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return Path(temp)


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file in the same folder, then rename: a reader sees the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _write_new(path.parent, path.name, data, mode)
    try:
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def load_signing_key(key_file: Path, checkpoint_dir: Path) -> nacl.signing.SigningKey:
    """The hub's signing key, made (0600) on first use; its public key is (re)written beside the checkpoints.
    Two hubs making it at once: the first link wins and both use its key."""
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        temp = _write_new(key_file.parent, key_file.name,
                          base64.b64encode(bytes(nacl.signing.SigningKey.generate())) + b"\n", 0o600)
        try:
            try:
                os.link(temp, key_file)  # fails if another process made it first: then theirs is the key
                log.info("made the audit checkpoint signing key %s (keep it secret; back it up)", key_file)
            except FileExistsError:
                pass
        finally:
            temp.unlink(missing_ok=True)
    if too_open(key_file, key_file.stat().st_mode):
        log.warning("the audit checkpoint signing key %s is readable by others: chmod 600 it", key_file)
    try:
        key = nacl.signing.SigningKey(base64.b64decode(key_file.read_bytes().strip(), validate=True))
    except (ValueError, nacl.exceptions.CryptoError) as exc:
        raise CheckpointError(f"{key_file} is not an audit signing key (base64 of 32 bytes): {exc}") from None
    public = verifier_key(KEY_NAME, bytes(key.verify_key)) + "\n"
    public_file = checkpoint_dir / PUBLIC_KEY_FILE
    if not public_file.exists() or public_file.read_text() != public:
        _write_atomically(public_file, public.encode())
    return key


def sign(checkpoint: Checkpoint, key: nacl.signing.SigningKey) -> bytes:
    """The checkpoint as signed-note bytes."""
    body = checkpoint.body()
    signature = key.sign(body).signature
    stamp = base64.b64encode(key_id(KEY_NAME, bytes(key.verify_key)) + signature).decode()
    return body + f"\n\u2014 {KEY_NAME} {stamp}\n".encode()


def write(checkpoint_dir: Path, checkpoint: Checkpoint, key: nacl.signing.SigningKey) -> Path:
    path = checkpoint_dir / checkpoint.tenant / f"{checkpoint.length:012d}.note"
    _write_atomically(path, sign(checkpoint, key))
    return path


def read_verifier(checkpoint_dir: Path) -> tuple[str, nacl.signing.VerifyKey]:
    """The verifier key beside the checkpoints: (name, key)."""
    path = checkpoint_dir / PUBLIC_KEY_FILE
    try:
        name, hex_id, encoded = path.read_text().strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the checkpoints' public key {path}: {exc}") from None
    if raw[:1] != _ED25519 or len(raw) != 33 or key_id(name, raw[1:]).hex() != hex_id:
        raise CheckpointError(f"{path} is not an Ed25519 verifier key")
    return name, nacl.signing.VerifyKey(raw[1:])


def parse(data: bytes, tenant: str, verifier: tuple[str, nacl.signing.VerifyKey], where: str = "") -> Checkpoint:
    """A signed checkpoint of `tenant`, or CheckpointError saying why it cannot be trusted."""
    name, key = verifier
    what = where or "the checkpoint"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{what} is not UTF-8 text") from None
    body, separator, signatures = text.partition("\n\n")
    lines = body.split("\n")
    if not separator or len(lines) != 3:
        raise CheckpointError(f"{what} is not a signed note (origin, length, head hash, blank line, signature)")
    origin, length_text, head_text = lines
    expected = Checkpoint(tenant, 0, b"").origin
    if origin != expected:
        raise CheckpointError(f"{what} is for {validators.describe(origin)}, not {expected}")
    try:
        length = int(length_text) if length_text.isdigit() else -1
        head = base64.b64decode(head_text, validate=True)
    except ValueError:
        head = b""
    if length < 0 or len(head) != 32:
        raise CheckpointError(f"{what} has no valid length and head hash")
    checkpoint = Checkpoint(tenant, length, head)
    for line in signatures.splitlines(keepends=True):
        match = _SIGNATURE.match(line)
        if not match or match.group(1) != name:
            continue
        stamp = base64.b64decode(match.group(2))
        if stamp[:4] != key_id(name, bytes(key)):
            continue
        try:
            key.verify(checkpoint.body(), stamp[4:])
        except nacl.exceptions.BadSignatureError:
            raise CheckpointError(f"{what}'s signature does not verify with the hub's public key: it was forged or "
                                  "altered") from None
        return checkpoint
    raise CheckpointError(f"{what} carries no signature by the hub's key {name}: forged or signed by another key")


def latest(checkpoint_dir: Path, tenant: str) -> Checkpoint | None:
    """The tenant's longest checkpoint, its signature checked (CheckpointError when it fails); None: none yet."""
    folder = checkpoint_dir / tenant
    lengths = sorted((int(m.group(1)), path) for path in folder.glob("*.note") if (m := _NAME.match(path.name)))
    if not lengths:
        return None
    _, path = lengths[-1]
    found = parse(path.read_bytes(), tenant, read_verifier(checkpoint_dir), str(path))
    if f"{found.length:012d}.note" != path.name:
        raise CheckpointError(f"{path} says length {found.length}, not what its name says")
    return Checkpoint(tenant, found.length, found.head, path)
