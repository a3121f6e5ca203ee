"""The configs and secrets configs/install.sh puts in /etc/novapos: the hub's from the shipped hub.toml and
secrets made here, a store's from the bundle `novapos hub store add` (or `rotate`) wrote.

Secrets go to /etc/novapos/credentials/{edge,hub}/<name> (root's, 0600): the units hand each to the service with
LoadCredential=<name>:<that file>, and the configs name them as `${CREDENTIALS_DIRECTORY}/<name>`. A secret or
config already present is never replaced (a new gift card key would make every card unfindable, a new audit key
would not verify the old checkpoints, the operator's edits to a config stay), except a store's NATS seed from a
bundle: installing a rotated seed is what the bundle is for. A store's TLS files are installed with its first
store.toml only (a rotated certificate is installed as the runbook says, not rolled back by a bundle).

Run by install.sh with the installed venv's python: `python -m novapos.deploy ETC --gid N [--hub TEMPLATE]
[--bundle FOLDER]`.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import stat
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

import tomli_w

from hub.tenancy.credentials import new_seed, public_key, write_seed

CREDENTIAL = "${CREDENTIALS_DIRECTORY}/"
HUB_SECRETS: dict[str, Callable[[], str]] = {"nats.seed": new_seed,
               "gift-cards.key": lambda: secrets.token_hex(32),
               "audit-signing.key": lambda: base64.b64encode(secrets.token_bytes(32)).decode()}
"""The hub's secrets made here: its NKEY seed, the gift card HMAC key (hex), the audit Ed25519 seed (base64)."""

HUB_SETTINGS = {("nats", "credentials"): f'credentials = "{CREDENTIAL}nats.seed"',
                ("database", "url"): f'url_file = "{CREDENTIAL}database-url"',
                ("gift_cards", "key_file"): f'key_file = "{CREDENTIAL}gift-cards.key"',
                ("audit", "key_file"): f'key_file = "{CREDENTIAL}audit-signing.key"',
                ("tls", "key_file"): f'key_file = "{CREDENTIAL}tls.key"',
                ("tls", "cert_file"): 'cert_file = "/etc/novapos/tls/hub.pem"',
                ("tls", "ca_file"): 'ca_file = "/etc/novapos/tls/ca.pem"'}
"""The lines of the shipped hub.toml replaced for an installed hub, by (table, key)."""


class DeployError(Exception):
    """What the install cannot do, in one sentence for the operator."""


def make_secret(path: Path, make: Callable[[], str]) -> bool:
    """`path` (0600) holding make()'s text, unless it exists. True when made."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        return False
    with os.fdopen(fd, "w") as file:
        file.write(make() + "\n")
    return True


def hub_config(template: str) -> str:
    """The shipped hub.toml, comments kept, with its secrets read from the unit's credentials."""
    lines, table = [], ""
    for line in template.splitlines():
        if heading := re.fullmatch(r"\[([a-z_]+)\]\s*(#.*)?", line):
            table = heading[1]
        key = re.match(r"([a-z_]+)\s*=", line)
        if key and (table, key[1]) in HUB_SETTINGS:
            line = f"{HUB_SETTINGS[table, key[1]]}   # installed: see configs/install.sh"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_config(path: Path, text: str, gid: int) -> bool:
    """A config file (root:novapos 0640), written only when absent. True when written."""
    if path.exists():
        return False
    path.write_text(text)
    os.chown(path, 0, gid)
    path.chmod(0o640)
    return True


def install_hub(etc: Path, template: Path, gid: int) -> list[str]:
    made = [name for name, make in HUB_SECRETS.items() if make_secret(etc / "credentials/hub" / name, make)]
    notes = [f"made {etc}/credentials/hub/{name}" for name in made]
    if write_config(etc / "hub.toml", hub_config(template.read_text()), gid):
        notes.append(f"wrote {etc}/hub.toml")
    return notes


def _read_in_bundle(bundle: Path, name: str) -> bytes:
    """The bytes of the regular file `name` right in the bundle's folder: a symlink (to /etc/shadow, say), a
    folder, a path elsewhere is refused (DeployError), never followed."""
    if name in ("", ".", "..") or "/" in name:
        raise DeployError(f"{bundle}: {name!r} is not a file name in the bundle")
    path = bundle / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise DeployError(f"{path} is not in the bundle") from None
    except OSError as exc:  # ELOOP: a symlink
        raise DeployError(f"{path} is a symlink or unreadable ({exc.strerror}): the bundle must hold the files "
                          f"themselves") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise DeployError(f"{path} is not a regular file")
        return file.read()


def _write_atomically(target: Path, data: bytes, mode: int) -> None:
    """`target` holding `data` with `mode`, whole or not at all (a process reloading it never reads half)."""
    fd, part = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, target)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise


def install_bundle(etc: Path, bundle: Path, gid: int) -> list[str]:
    """A store's bundle: its seed (always: a rotation), and when no store.toml is installed yet its store.toml
    with the seed and the TLS key read from the unit's credentials and its certificates from /etc/novapos/tls,
    those files copied with it. An installed store keeps its config and its TLS files (a rotated certificate
    is never rolled back by installing the first bundle again). Bundle files are read only from the bundle's
    folder, never through a symlink, and written whole."""
    seeds = sorted(bundle.glob("*.seed"))
    if len(seeds) != 1:
        raise DeployError(f"the bundle {bundle} must hold one seed file (store.seed), found {len(seeds)}")
    seed = _read_in_bundle(bundle, seeds[0].name).decode(errors="replace").strip()
    try:
        public_key(seed)
    except ValueError as exc:
        raise DeployError(f"{seeds[0]} is not a NATS seed: {exc}") from None
    store_text: str | None = None
    if (bundle / "store.toml").exists() or (bundle / "store.toml").is_symlink():
        store_text = _read_in_bundle(bundle, "store.toml").decode(errors="replace")
    write_seed(etc / "credentials/edge/nats.seed", seed)
    notes = [f"installed {seeds[0]} as {etc}/credentials/edge/nats.seed"]
    if store_text is None:
        return notes
    if (etc / "store.toml").exists():
        notes.append(f"{etc}/store.toml is already installed: kept it and the TLS files it names (install new "
                     f"certificates as the runbook's \"Rotating TLS certificates\" says)")
        return notes
    try:
        store = tomllib.loads(store_text)
    except tomllib.TOMLDecodeError as exc:
        raise DeployError(f"{bundle}/store.toml is not valid TOML: {exc}") from None
    store.setdefault("nats", {})["credentials"] = f"{CREDENTIAL}nats.seed"
    tls = store.get("tls", {})
    copies: list[tuple[Path, bytes, int]] = []
    for key in ("cert_file", "ca_file", "key_file"):
        if tls.get(key):
            name = Path(tls[key]).name  # written on the hub: found in the bundle by its name
            if not (bundle / name).is_file() and not (bundle / name).is_symlink():
                raise DeployError(f"{bundle}/store.toml [tls] {key} names {name}, which is not in the bundle")
            data = _read_in_bundle(bundle, name)
            secret = key == "key_file"
            target = etc / "credentials/edge/tls.key" if secret else etc / "tls" / name
            copies.append((target, data, 0o600 if secret else 0o644))
            tls[key] = f"{CREDENTIAL}tls.key" if secret else f"/etc/novapos/tls/{name}"
    for target, data, mode in copies:  # every file read and checked before any is written
        _write_atomically(target, data, mode)
    if write_config(etc / "store.toml", "# From the store's bundle (configs/install.sh): add its [devices] rules.\n"
                    + tomli_w.dumps(store), gid):
        notes.append(f"wrote {etc}/store.toml")
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m novapos.deploy", description=__doc__)
    parser.add_argument("etc", type=Path, help="the configs folder, /etc/novapos (under --root for a test)")
    parser.add_argument("--gid", type=int, required=True, help="the novapos group, which may read the configs")
    parser.add_argument("--hub", type=Path, metavar="TEMPLATE", help="install the hub's: from this hub.toml")
    parser.add_argument("--bundle", type=Path, help="install a store's bundle (store.toml and store.seed)")
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        notes = [*(install_hub(args.etc, args.hub, args.gid) if args.hub else []),
                 *(install_bundle(args.etc, args.bundle, args.gid) if args.bundle else [])]
    except (DeployError, OSError) as exc:
        print(f"install.sh: {exc}", file=sys.stderr)
        return 1
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
