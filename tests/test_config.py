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


DEMO = (CONFIGS / "demo-store.toml").read_text()


@pytest.mark.parametrize(("change", "says"), [
    (lambda t: t.replace('currency = "EUR"', 'currency = "EURO"'), "three-letter ISO code"),
    (lambda t: t.replace("price = 499", "price = -1"), "from 0 to 10^9"),
    (lambda t: t.replace("price = 499", "price = 4.99"), "'price' must be whole number"),
    (lambda t: t.replace('name = "Whole milk 1 l"', 'name = "  "'), "must not be empty"),
    (lambda t: t.replace('barcode = "5000112637922"', 'barcode = "4006381333931"'), "already product COF-250's"),
    (lambda t: t.replace("scan_interval = 0.5", "scan_interval = 0"), "from 0.05 to 60"),
    (lambda t: t.replace("debounce_scans = 3", 'debounce_scans = "3"'), "whole number from 1 to 100"),
    (lambda t: t.replace('tills = ["till-1", "till-2"]', 'tills = ["till-1", "till-1"]'), "must be unique"),
    (lambda t: t.replace("port = 8600", "port = 86000"), "from 0 to 65535"),
    (lambda t: t.replace("[http]", "[http"), "not valid TOML"),
])
def test_bad_store_settings_are_refused_with_the_reason(tmp_path: Path, change, says: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "store.toml"
    path.write_text(change(DEMO))
    with pytest.raises(ConfigError) as refused:
        load_store(path)
    assert says in str(refused.value)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_store(tmp_path / "nope.toml")
