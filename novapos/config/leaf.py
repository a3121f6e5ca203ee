"""[leaf] in store.toml: the store box runs its own nats-server as a leaf node of the hub's (novapos.leaf,
`novapos leaf`), and the edge talks to that one, on loopback, instead of the hub's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from novapos import logs, validators
from novapos.config.reading import path_setting

KEYS = frozenset({"hub_url", "port", "dir", "check_every_s", "allow_plaintext"})
LEAFNODE_PORT = 7422
"""nats-server's default leafnode port: a hub_url without a port means it."""
PLAINTEXT = ("nats", "nats-leaf")


@dataclass(frozen=True)
class LeafSettings:
    """`hub_url`: the hub's leafnode listener(s), tls://host:7422, comma-separated for a cluster; `port`: the
    loopback port the leaf listens on for the edge (0: any free one, for tests); `state_dir`: the leaf server's
    config, log and JetStream files (keep it on the disk the outbox is on: events it acked and the hub has not
    sourced yet live only there); `check_every_s`: how often `novapos leaf` checks the catalog mirror;
    `allow_plaintext`: a nats:// (or nats-leaf://) hub_url is refused unless this is true (the link crosses the WAN:
    without TLS anyone on the path reads the store's sales and can impersonate the hub)."""
    hub_url: str
    port: int = 4222
    state_dir: Path = Path(".state/leaf")
    check_every_s: int = 15
    allow_plaintext: bool = False

    @property
    def local_url(self) -> str:
        """Where the edge reaches the leaf: loopback only, never off the box."""
        return f"nats://127.0.0.1:{self.port}"


def load_leaf(section: Mapping[str, Any], where: str, state_dir: Path) -> LeafSettings | None:
    """[leaf] from the store config's table (None when absent: the edge talks to the hub's NATS directly)."""
    if not section:
        return None
    allow_plaintext = validators.boolean(f"{where}: [leaf] allow_plaintext", section.get("allow_plaintext", False))
    hub_url = ",".join(hub_urls(f"{where}: [leaf] hub_url", section.get("hub_url", ""), allow_plaintext))
    return LeafSettings(
        hub_url=hub_url,
        port=validators.integer(f"{where}: [leaf] port", section.get("port", LeafSettings.port), 1, 65535),
        state_dir=path_setting(f"{where}: [leaf] dir", section.get("dir", "")) or state_dir / "leaf",
        check_every_s=validators.integer(f"{where}: [leaf] check_every_s",
                                         section.get("check_every_s", LeafSettings.check_every_s), 1, 3600),
        allow_plaintext=allow_plaintext)


def hub_urls(where: str, value: Any, allow_plaintext: bool) -> list[str]:
    """The hub's leafnode listener(s): tls://host[:port] (7422 by default), comma-separated for a cluster, all with one
    scheme, none twice, no user or password in them (the leaf logs in with the store's key, [nats] credentials);
    nats:// and nats-leaf:// (no TLS) only with `allow_plaintext`. A refused entry is shown without its credentials."""
    servers = [one.strip() for one in validators.text(where, value, max_length=2000).split(",")]
    seen: set[tuple[str, int]] = set()
    for server in servers:
        parts = urlsplit(server)
        shown = logs.address(server) if server else "an empty entry"
        try:
            port = LEAFNODE_PORT if parts.port is None else parts.port
        except ValueError:
            port = 0
        if parts.scheme.lower() not in ("tls", *PLAINTEXT) or not parts.hostname or parts.path not in ("", "/") \
                or port == 0 or parts.query or parts.fragment:
            raise validators.Invalid(where, "must be the hub's leafnode address(es), e.g. tls://hub.example:7422 "
                                            f"(comma-separated for a cluster), got {shown}")
        if parts.username is not None or parts.password is not None:
            raise validators.Invalid(where, f"must not carry a user or password ({shown}): the leaf logs in with the "
                                            "store's key, [nats] credentials")
        if parts.scheme.lower() != urlsplit(servers[0]).scheme.lower():
            raise validators.Invalid(where, "mixes schemes: the hub's leafnode listeners are all TLS or none")
        if parts.scheme.lower() in PLAINTEXT and not allow_plaintext:
            raise validators.Invalid(where, f"is not TLS ({shown}): the leaf link crosses the WAN; use tls:// (and "
                                            "[tls] ca_file), or set [leaf] allow_plaintext = true on a trusted network")
        if (parts.hostname, port) in seen:
            raise validators.Invalid(where, f"lists {parts.hostname}:{port} twice")
        seen.add((parts.hostname, port))
    return servers
