"""[leaf] in store.toml: the store box runs its own nats-server as a leaf node of the hub's (novapos.leaf,
`novapos leaf`), and the edge talks to that one, on loopback, instead of the hub's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novapos import validators
from novapos.config.reading import path_setting

KEYS = frozenset({"hub_url", "port", "dir", "check_every_s"})


@dataclass(frozen=True)
class LeafSettings:
    """`hub_url`: the hub's leafnode listener(s), tls://host:7422, comma-separated for a cluster; `port`: the
    loopback port the leaf listens on for the edge (0: any free one, for tests); `state_dir`: the leaf server's
    config, log and JetStream files (keep it on the disk the outbox is on: events it acked and the hub has not
    sourced yet live only there); `check_every_s`: how often `novapos leaf` checks the catalog mirror."""
    hub_url: str
    port: int = 4222
    state_dir: Path = Path(".state/leaf")
    check_every_s: int = 15

    @property
    def local_url(self) -> str:
        """Where the edge reaches the leaf: loopback only, never off the box."""
        return f"nats://127.0.0.1:{self.port}"


def load_leaf(section: Mapping[str, Any], where: str, state_dir: Path) -> LeafSettings | None:
    """[leaf] from the store config's table (None when absent: the edge talks to the hub's NATS directly)."""
    if not section:
        return None
    hub_url = validators.text(f"{where}: [leaf] hub_url", section.get("hub_url", ""), max_length=2000)
    urls = [url.strip() for url in hub_url.split(",")]
    if not hub_url or not all(url.startswith(("tls://", "nats-leaf://", "nats://")) and len(url) > 8 for url in urls):
        raise validators.Invalid(f"{where}: [leaf] hub_url", "must be the hub's leafnode address(es), "
                                 "e.g. tls://hub.example:7422 (comma-separated for a cluster)")
    return LeafSettings(
        hub_url=hub_url,
        port=validators.integer(f"{where}: [leaf] port", section.get("port", LeafSettings.port), 1, 65535),
        state_dir=path_setting(f"{where}: [leaf] dir", section.get("dir", "")) or state_dir / "leaf",
        check_every_s=validators.integer(f"{where}: [leaf] check_every_s",
                                         section.get("check_every_s", LeafSettings.check_every_s), 1, 3600))
