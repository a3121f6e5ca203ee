"""Store configs a person might get wrong are refused with a sentence saying what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from novapos.config import ConfigError, load_devices, load_hub, load_store
from novapos.demo.run import write_store_config

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
    (lambda t: t.replace('currency = "EUR"', 'currency = "EURO"'), "currency must be a three-letter ISO currency code"),
    (lambda t: t.replace("scan_interval = 0.5", "scan_interval = 0"), "from 0.05 to 60"),
    (lambda t: t.replace("debounce_scans = 3", 'debounce_scans = "3"'), "whole number from 1 to 100"),
    (lambda t: t.replace('tills = ["till-1", "till-2"]', 'tills = ["till-1", "till-1"]'), "must be unique"),
    (lambda t: t.replace("port = 8600", "port = 86000"), "from 0 to 65535"),
    (lambda t: t.replace('host = "127.0.0.1"', 'host = "127.0.0.1\\u0000"', 1), "[http] host must not contain NUL"),
    (lambda t: t.replace('url = ""', 'url = "nats://x\\nforged"', 1), "[nats] url must not contain a control"),
    (lambda t: t.replace("[http]", "[http"), "not valid TOML"),
    (lambda t: t.replace('tenant = "demo"', 'tenant = "demo corp"'), "tenant may use only letters, digits"),
    (lambda t: t.replace('store = "store-001"', 'store = "paris.1"'), "store may use only letters, digits"),
    (lambda t: t.replace('tenant = "demo"', 'tenant = 7'), "tenant must be a non-empty name"),
    (lambda t: t.replace('tills = ["till-1", "till-2"]', 'tills = ["till 1"]'), "tills[0] may use only letters"),
    (lambda t: t.replace('tills = ["till-1", "till-2"]', 'tills = []'), "tills must be a list of at least one name"),
    (lambda t: t.replace("max_change_minor = 50000", "max_change_minor = -1"), "max_change_minor must be from 0"),
    (lambda t: t.replace("max_change_minor = 50000", 'max_change_minor = "500"'), "max_change_minor must be a whole"),
    (lambda t: t.replace('currency = "EUR"', 'currency = "XAU"').replace("max_change_minor = 50000", ""),
     "set max_change_minor"),
    # a misspelled setting would silently leave its default (here: 50000 of change) in force
    (lambda t: t.replace("max_change_minor = 50000", "max_chnage_minor = 5"), "unknown setting(s) max_chnage_minor"),
    (lambda t: t.replace("[http]", "[printer]\nhost = 'x'\n\n[http]"), "unknown setting(s) printer"),
    (lambda t: t.replace("port = 8600", "prot = 8600"), "unknown setting(s) [http] prot; known: host, port"),
    (lambda t: t.replace('url = ""', 'ulr = "nats://x"', 1), "unknown setting(s) [nats] ulr"),
    (lambda t: t.replace('dir = ".state/store-001"', 'directory = "/x"'), "unknown setting(s) [state] directory"),
    (lambda t: t.replace("debounce_scans = 3", "debounce_scan = 9"), "unknown setting(s) [devices] debounce_scan"),
    (lambda t: t.replace("tills = [", "till = ["), "unknown setting(s) till;"),  # not one default till-1
    # products come from the hub's catalog now: an old config's list is refused, not silently ignored
    (lambda t: t + '\n[[products]]\nsku = "COF-250"\nbarcode = "4006381333931"\nname = "Coffee"\nprice = 499\n',
     "unknown setting(s) products"),
])
def test_bad_store_settings_are_refused_with_the_reason(  # type: ignore[no-untyped-def]
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change, says: str) -> None:
    monkeypatch.delenv("NOVAPOS_NATS_URL", raising=False)  # the file's own url is what is checked
    path = tmp_path / "store.toml"
    path.write_text(change(DEMO))
    with pytest.raises(ConfigError) as refused:
        load_store(path)
    assert says in str(refused.value)


def test_the_config_the_demo_writes_loads(tmp_path: Path) -> None:
    """`novapos demo` writes its store config from the demo one, pointed at its simulated hardware."""
    devices = tomllib.loads(DEMO)["devices"] | {"hid_backend": "socket:/run/demo-hid.sock"}
    write_store_config(tmp_path / "store.toml", tmp_path, 8601, devices)
    config = load_store(tmp_path / "store.toml")
    assert (config.http_port, config.state_dir, config.devices.hid_backend) == \
        (8601, tmp_path / "store-001", "socket:/run/demo-hid.sock")


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_store(tmp_path / "nope.toml")


def test_change_is_capped_at_the_largest_banknote_unless_configured(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_text(DEMO.replace("max_change_minor = 50000", ""))
    assert load_store(path).max_change_minor == 50000  # one 500 EUR note
    path.write_text(DEMO.replace("max_change_minor = 50000", "max_change_minor = 10000"))
    assert load_store(path).max_change_minor == 10000
    path.write_text(DEMO.replace('currency = "EUR"', 'currency = "XAU"').replace("50000", "0"))
    assert load_store(path).max_change_minor == 0  # a currency it does not know, capped by the store


def test_the_edge_refuses_a_bad_store_config_with_exit_code_2_and_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_text(DEMO.replace('store = "store-001"', 'store = "paris.1"'))
    result = subprocess.run([sys.executable, "-m", "novapos.cli", "edge", "--config", str(path)],
                            capture_output=True, text=True, timeout=30, cwd=tmp_path,
                            env={**os.environ, "NOVAPOS_NATS_URL": "nats://127.0.0.1:1"})
    assert result.returncode == 2, result.stderr
    assert f"configuration problem: {path} store may use only letters, digits, '-' and '_', got 'paris.1'" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_a_payments_watchdog_that_could_resend_a_call_in_flight_is_refused(tmp_path: Path) -> None:
    hub = (CONFIGS / "hub.toml").read_text()
    assert load_hub(CONFIGS / "hub.toml").payments.watchdog_after_s == 60
    path = tmp_path / "hub.toml"
    path.write_text(hub.replace("watchdog_after_s = 60", "watchdog_after_s = 11"))
    with pytest.raises(ConfigError, match=r"watchdog_after_s.*more than timeout_s \+ 1 \(11\)"):
        load_hub(path)
