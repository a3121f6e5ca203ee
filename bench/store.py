"""The demo store as a benchmark runs it: its config on a free port, NATS and the devices the benchmark brings,
and its state folder seeded with the demo's catalog and staff, as if both had come from the hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from novapos.config import DevicesConfig, StoreConfig, load_store
from novapos.demo.embedded_nats import EmbeddedNats
from tests.catalog import seed_catalog
from tests.pos import seed_staff

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def demo_store(server: EmbeddedNats, state_dir: Path, devices: DevicesConfig, **settings: Any) -> StoreConfig:
    """The demo store's config with these devices (and any other setting replaced), its state folder seeded."""
    demo = load_store(CONFIGS / "demo-store.toml")
    config = StoreConfig(**{**vars(demo), "http_port": 0, "nats_url": server.url, "tls": server.tls_settings(), "state_dir": state_dir,
                            "devices": devices, **settings})
    seed_catalog(config.state_dir)
    seed_staff(config.state_dir)
    return config
