"""Store configs a person might get wrong are refused with a sentence saying what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from novapos.config import ConfigError, load_devices, load_store

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TILLS = ("till-1", "till-2")


def test_the_demo_store_config_loads_with_its_devices() -> None:
    config = load_store(CONFIGS / "demo-store.toml")
    kinds = {rule.name: (rule.kind, rule.bus) for rule in config.devices.rules}
    assert kinds["receipt-printer"] == ("printer", "network")
    assert kinds["scanner-1"] == ("scanner", "hid") and kinds["scanner-2"] == ("scanner", "serial")
    assert config.devices.for_till("printer", "till-2").name == "receipt-printer"  # type: ignore[union-attr]
    assert config.devices.for_till("drawer", "till-2").name == "drawer-2"  # type: ignore[union-attr]


@pytest.mark.parametrize(("rules", "says"), [
    ([{"name": "p", "driver": "laser-printer"}], "unknown driver 'laser-printer'"),
    ([{"name": "p", "driver": "escpos-network", "host": "10.0.0.5"}], "needs port"),
    ([{"name": "s", "driver": "hid-pos", "vendor_id": 1}], "needs product_id"),
    ([{"name": "s", "driver": "serial-scanner", "path": "/dev/ttyUSB0", "till": "till-9"}], "till 'till-9'"),
    ([{"name": "d", "driver": "printer-drawer", "printer": "nope"}], "printer 'nope', which is not configured"),
    ([{"name": "d", "driver": "serial-drawer", "path": "/dev/ttyS0", "pin": 3}], "pin must be 2 or 5"),
    ([{"name": "p", "driver": "escpos-network", "host": "h", "port": "9100"}], "'port' must be whole number"),
    ([{"name": "bad name", "driver": "escpos-network", "host": "h", "port": 1}], "letters, digits"),
    ([{"name": "p", "driver": "escpos-network", "host": "h", "port": 1, "colour": "red"}], "unknown setting(s) colour"),
    ([{"name": "p", "driver": "escpos-network", "host": "h", "port": 1}] * 2, "must be unique"),
])
def test_bad_device_rules_are_refused_with_the_reason(rules: list[dict], says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_devices({"rules": rules}, "store.toml", TILLS)
    assert says in str(refused.value)
