"""The two commands a new user meets: `novapos --help` and `novapos demo`, run as real processes."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import httpx
import pytest

from novapos.demo.provision import DEMO_USERS
from tests.demo_process import start_demo
from tests.pos import COFFEE

_TRUST = ssl.create_default_context()
"""The browser's trust: the demo's CA is added once the demo has made it (a browser told to trust it)."""
_TILL_BROWSER = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                            urllib.request.HTTPSHandler(context=_TRUST))
"""Keeps the till login's cookie, as the web till's browser does."""


def _http(method: str, url: str, body: dict | None = None) -> tuple[int, dict | list]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json"})
    with _TILL_BROWSER.open(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def _logged_in(till: str) -> bool:
    """The demo's cashier logs in with the PIN the banner prints, once the hub's staff list has reached the store."""
    cashier = next(user for user in DEMO_USERS if user.pin is not None)
    try:
        return _http("POST", f"{till}/api/tills/till-1/login", {"login": cashier.login, "pin": cashier.pin})[0] == 200
    except urllib.error.HTTPError:
        return False


def _wait(condition, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _device(till: str, name: str) -> str:
    _, devices = _http("GET", f"{till}/api/devices")
    return next(d["state"] for d in devices if d["device"] == name)  # type: ignore[union-attr,index]


@pytest.mark.parametrize("command", ["edge", "hub", "demo", "mock"])
def test_each_command_explains_itself(command: str) -> None:
    result = subprocess.run([sys.executable, "-m", "novapos.cli", command, "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert f"usage: novapos {command}" in result.stdout
    assert {"edge": "keeps selling", "hub": "exactly once", "demo": "embedded nats", "mock": "unplug a device"}[command] in " ".join(result.stdout.split()).lower()


def test_edge_without_nats_address_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NOVAPOS_NATS_URL"}
    result = subprocess.run([sys.executable, "-m", "novapos.cli", "edge"], capture_output=True, text=True,
                            timeout=30, env=env)
    assert result.returncode == 2
    assert "NOVAPOS_NATS_URL" in result.stderr


def test_demo_runs_both_processes_and_a_sale_lands_once(tmp_path: Path) -> None:
    started = start_demo(tmp_path / "state")
    demo, till_port, console_port = started.process, started.till_port, started.console_port
    till, console = f"https://127.0.0.1:{till_port}", f"https://127.0.0.1:{console_port}"
    try:
        banner = started.banner()
        assert f"{till}/" in banner and f"{console}/" in banner
        ca_file = (tmp_path / "state" / "tls" / "ca.pem").resolve()
        assert str(ca_file) in banner  # the CA to trust, where the banner says
        _TRUST.load_verify_locations(cafile=ca_file)
        with pytest.raises(OSError):  # plain HTTP is not served: the connection closes without an answer
            urllib.request.urlopen(f"http://127.0.0.1:{till_port}/healthz", timeout=5)
        # the way to the simulated devices works as printed, wherever the demo was installed and run from
        assert f"mock --state-dir {(tmp_path / 'state').resolve()} help" in banner
        assert _http("GET", f"{till}/healthz")[0] == 200
        assert _http("GET", f"{console}/healthz")[0] == 200
        # the embedded NATS runs with the hub's authorization; the hub and the store log in with their own keys
        assert f"(per-store NKEY credentials in {(tmp_path / 'state' / 'credentials').resolve()})" in banner
        assert "store demo/store-001" in (tmp_path / "state" / "credentials" / "authorization.conf").read_text()
        # the acquirer simulator answers where the banner says, and the hub is pointed at it
        acquirer = re.search(r"QR wallet at (http://127\.0\.0\.1:\d+)/", banner)
        assert acquirer is not None and httpx.get(f"{acquirer[1]}/").status_code == 200
        payments = tomllib.loads((tmp_path / "state" / "hub.toml").read_text())["payments"]
        assert payments["gateway_url"] == acquirer[1]
        assert Path(payments["webhook_secrets_file"]).stat().st_mode & 0o777 == 0o600
        # the store sells from the hub's catalog (configs/demo-catalog.csv, seeded by the demo), synced over NATS
        _wait(lambda: (_http("GET", f"{till}/healthz")[1].get("catalog_version") or 0) >= 1, 30)  # type: ignore[union-attr]
        _wait(lambda: _logged_in(till), 30)
        _, products = _http("GET", f"{till}/api/products?q=Ground")
        assert [p["sku"] for p in products["products"]] == ["COF-250"]  # type: ignore[index]

        _, state = _http("POST", f"{till}/api/tills/till-1/lines", {"barcode": COFFEE, "quantity": 3})
        _http("POST", f"{till}/api/tills/till-1/tenders", {"amount_minor": 1500})
        _, receipt = _http("POST", f"{till}/api/tills/till-1/complete", {"cart": state["cart"]})  # type: ignore[index]
        _http("POST", f"{till}/api/tills/till-1/complete", {"cart": state["cart"]})  # type: ignore[index]  # a resend

        deadline = time.monotonic() + 20
        sales: list = []
        with httpx.Client(base_url=console, timeout=5, verify=_TRUST) as admin:  # the console is for its signed-in people
            demo_admin = DEMO_USERS[0]
            answer = admin.post("/api/login", json={"login": demo_admin.login, "password": demo_admin.password})
            assert answer.status_code == 200, answer.text
            while time.monotonic() < deadline and not sales:
                sales = admin.get("/api/sales").json()
                time.sleep(0.2)
            time.sleep(1.0)
            sales = admin.get("/api/sales").json()
        assert [sale["event_id"] for sale in sales] == [receipt["sale"]]  # type: ignore[index]
        assert sales[0]["total_minor"] == 2 * 499  # the demo's "Coffee 3 for 2": the third bag free
        health = _http("GET", f"{till}/healthz")[1]
        assert health["status"] == "ok" and "nats" not in health, health  # type: ignore[call-overload,operator]

        # A person plays with the simulated hardware from another terminal.
        mock = [sys.executable, "-m", "novapos.cli", "mock", "--state-dir", str(tmp_path / "state")]
        scanned = subprocess.run([*mock, "scan", "scanner-1", COFFEE], capture_output=True, text=True, timeout=30)
        assert scanned.returncode == 0 and "scanner-1 scanned" in scanned.stdout
        _wait(lambda: _http("GET", f"{till}/api/tills/till-1")[1]["lines"] != [])  # type: ignore[index]
        # the receipt of the sale above, as the simulated printer cut it (printed once: the resend printed nothing)
        _wait(lambda: subprocess.run([*mock, "receipt", "receipt-printer"], capture_output=True, text=True,
                                     timeout=30).returncode == 0)
        printed = subprocess.run([*mock, "receipt", "receipt-printer"], capture_output=True, text=True, timeout=30)
        assert f"Sale #{receipt['seq']}" in printed.stdout and "NovaPOS Demo Store" in printed.stdout  # type: ignore[index]
        second = subprocess.run([*mock, "receipt", "receipt-printer", "2"], capture_output=True, text=True, timeout=30)
        assert second.returncode == 1 and "cut 1 receipt(s)" in second.stderr
        unplugged = subprocess.run([*mock, "unplug", "receipt-printer"], capture_output=True, text=True, timeout=30)
        assert unplugged.returncode == 0
        _wait(lambda: _device(till, "receipt-printer") == "down")
        listing = subprocess.run([*mock, "list"], capture_output=True, text=True, timeout=30).stdout
        assert "receipt-printer" in listing and "UNPLUGGED" in listing
        wrong = subprocess.run([*mock, "unplug", "toaster"], capture_output=True, text=True, timeout=30)
        assert wrong.returncode == 1 and "no simulated device 'toaster'" in wrong.stderr
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output
    for port in (till_port, console_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=1, context=_TRUST)


def test_demo_leaf_runs_the_store_through_its_own_leaf_node_and_a_sale_reaches_the_hub(tmp_path: Path) -> None:
    state = tmp_path / "state"
    started = start_demo(state, "--leaf")
    demo, till_port, console_port = started.process, started.till_port, started.console_port
    till = f"https://127.0.0.1:{till_port}"
    try:
        banner = started.banner()
        assert "leaf node    the store's own nats-server on nats://127.0.0.1:" in banner
        store = tomllib.loads((state / "store.toml").read_text())
        assert store["leaf"]["hub_url"].startswith("tls://127.0.0.1:")
        assert tomllib.loads((state / "hub.toml").read_text())["leaf"] == {"check_every_s": 5}  # no list of stores:
        assert '"LEAFNODE"' in (state / "credentials" / "authorization.conf").read_text()  # its flag, a leaf login only
        _TRUST.load_verify_locations(cafile=(state / "tls" / "ca.pem").resolve())
        _wait(lambda: (_http("GET", f"{till}/healthz")[1].get("catalog_version") or 0) >= 1, 30)  # type: ignore[union-attr]  # the mirror
        _wait(lambda: _logged_in(till), 30)
        _, cart = _http("POST", f"{till}/api/tills/till-1/lines", {"barcode": COFFEE, "quantity": 1})
        _http("POST", f"{till}/api/tills/till-1/tenders", {"amount_minor": 500})
        _, receipt = _http("POST", f"{till}/api/tills/till-1/complete", {"cart": cart["cart"]})  # type: ignore[index]
        assert "sale" in receipt, receipt
        with httpx.Client(base_url=f"https://127.0.0.1:{console_port}", timeout=5, verify=_TRUST) as admin:
            login = {"login": DEMO_USERS[0].login, "password": DEMO_USERS[0].password}
            assert admin.post("/api/login", json=login).status_code == 200
            _wait(lambda: [sale["event_id"] for sale in admin.get("/api/sales").json()] == [receipt["sale"]], 30)  # type: ignore[index]
        # sourced by the hub from the leaf (the hub's answer to the store's health report says up to where)
        _wait(lambda: (lambda h: h["status"] == "ok" and h.get("leaf_unsourced_events") == 0  # type: ignore[union-attr]
                       and h.get("leaf_hub_answered_s_ago") is not None)(_http("GET", f"{till}/healthz")[1]), 30)
        assert (state / "store-001" / "leaf" / "leaf-server.pid").exists()
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output
    assert "store leaf node stopped" in output


def test_embedded_postgres_starts_in_a_deep_state_folder(tmp_path: Path) -> None:
    """A Unix socket path is limited to 107 bytes; the demo's state folder may be deeper than that."""
    from novapos.demo.embedded_postgres import EmbeddedPostgres
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "state" / "postgres"
    assert len(str(deep / "pgdata" / ".s.PGSQL.65535")) > 107
    with EmbeddedPostgres(deep) as server:
        result = subprocess.run([sys.executable, "-c", "import asyncio, asyncpg, sys; "
                                 "print(asyncio.run(asyncpg.connect(sys.argv[1])).__class__.__name__)", server.url()],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
