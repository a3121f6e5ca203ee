"""The fleet's two settings: a store's [health] report_interval_s and the hub's [fleet] offline_after_s, read
from their files, bounded, and a misspelling refused rather than left at its default."""

from __future__ import annotations

from pathlib import Path

import pytest

from novapos.config import ConfigError, load_hub, load_store

CONFIGS = Path(__file__).parent.parent / "configs"


def test_the_intervals_are_read_with_their_defaults(tmp_path: Path) -> None:
    assert load_store(CONFIGS / "demo-store.toml").health_interval_s == 5
    assert load_hub(CONFIGS / "hub.toml").fleet_offline_after_s == 20
    store, hub = tmp_path / "store.toml", tmp_path / "hub.toml"
    store.write_text((CONFIGS / "demo-store.toml").read_text() + "\n[health]\nreport_interval_s = 2\n")
    hub.write_text((CONFIGS / "hub.toml").read_text() + "\n[fleet]\noffline_after_s = 60\n")
    assert load_store(store).health_interval_s == 2 and load_hub(hub).fleet_offline_after_s == 60


@pytest.mark.parametrize(("which", "table", "says"), [
    ("demo-store.toml", "[health]\nreport_interval_s = 0", "[health] report_interval_s must be from 1 to 3600"),
    ("demo-store.toml", "[health]\nreport_interval_s = 2.5", "[health] report_interval_s must be a whole number"),
    ("demo-store.toml", "[health]\nreport_every_s = 2", "unknown setting(s) [health] report_every_s"),
    ("hub.toml", "[fleet]\noffline_after_s = 1", "[fleet] offline_after_s must be from 2 to 3600"),
    ("hub.toml", '[fleet]\noffline_after_s = "20"', "[fleet] offline_after_s must be a whole number"),
    ("hub.toml", "[fleet]\noffline_after = 20", "unknown setting(s) [fleet] offline_after"),
])
def test_bad_fleet_settings_are_refused_with_the_reason(tmp_path: Path, which: str, table: str, says: str) -> None:
    path = tmp_path / which
    path.write_text((CONFIGS / which).read_text() + f"\n{table}\n")
    with pytest.raises(ConfigError) as refused:
        (load_store if which == "demo-store.toml" else load_hub)(path)
    assert says in str(refused.value)
