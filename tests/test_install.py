"""The install test: build the wheel, install it with its dependencies into a fresh venv, run the demo.

Slow (a wheel build, a venv, a demo with embedded NATS and PostgreSQL): it is one test, marked
`install`, so `pytest -m "not install"` skips it. It proves what a person gets from `pip install .`:
the configs travel in the wheel, the benchmarks do not, and the installed `novapos demo`, started
outside the source tree, serves a sale from the web till to the hub console and stops cleanly.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
import trio

from novapos.demo.processes import free_port
from novapos.demo.provision import DEMO_USERS
from tests.conftest import wait_until
from tests.identity import signed_in
from tests.pos import COFFEE, sell

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.install


async def _run(*argv: str | Path, cwd: Path) -> None:
    result = await trio.run_process([str(a) for a in argv], cwd=cwd, capture_stdout=True, capture_stderr=True,
                                    check=False)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout.decode()}\n{result.stderr.decode()}"


def _logs(demo_log: Path, state: Path) -> str:
    """The demo's output and its servers' logs, for a failure message."""
    return "\n".join(f"--- {path}\n{path.read_text(errors='replace')[-4000:]}"
                     for path in [demo_log, *state.glob("*/*.log")] if path.is_file())


async def test_the_wheel_installs_into_a_fresh_venv_and_its_demo_sells(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"  # not the source tree: nothing can be imported or read from it
    outside.mkdir()
    # From a copy of the sources: a build/ left in the worktree by an earlier build would leak into the wheel.
    sources = tmp_path / "sources"
    shutil.copytree(REPO, sources, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__"))
    await _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", sources,
               cwd=outside)
    wheel = next((tmp_path / "dist").glob("novapos-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("configs/demo-store.toml", "configs/hub.toml",
                    "configs/systemd/novapos-edge.service", "configs/systemd/novapos-hub@.service"):
        assert shipped in names, f"{shipped} is missing from the wheel"
    assert not [name for name in names if name.startswith(("bench/", "tests/"))], "benchmarks or tests in the wheel"

    venv = tmp_path / "venv"
    await _run(sys.executable, "-m", "venv", venv, cwd=outside)  # no system site-packages: deps must come with it
    await _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=outside)

    till_port, console_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVAPOS_", "PYTHON", "VIRTUAL_ENV"))}
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen([venv / "bin" / "novapos", "demo", "--state-dir", "state", "--till-port",
                                 str(till_port), "--console-port", str(console_port)],
                                cwd=outside, env=env, stdout=log, stderr=subprocess.STDOUT)
    till, console = f"https://127.0.0.1:{till_port}", f"https://127.0.0.1:{console_port}"
    trust = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # the demo's CA alone, once the demo has made it
    http = httpx.AsyncClient(timeout=10, verify=trust)
    try:
        async def healthy(url: str) -> bool:
            assert demo.poll() is None, f"the demo exited with {demo.returncode}:\n{_logs(log_path, outside / 'state')}"
            if (ca_file := outside / "state" / "tls" / "ca.pem").exists() and not trust.get_ca_certs():  # once
                trust.load_verify_locations(cafile=ca_file)
            try:
                return (await http.get(f"{url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(lambda: healthy(console), timeout=120)
        await wait_until(lambda: healthy(till), timeout=60)

        async def catalog_synced() -> bool:  # the hub's demo catalog, published and synced by the store
            return ((await http.get(f"{till}/healthz")).json().get("catalog_version") or 0) >= 1
        await wait_until(catalog_synced, timeout=60)
        assert "NovaPOS" in (await http.get(f"{till}/")).text  # the web till's page came with the wheel

        cashier = next(user for user in DEMO_USERS if user.login == "cashier")  # the demo's, as its banner says
        login = await http.post(f"{till}/api/tills/till-1/login", json={"login": cashier.login, "pin": cashier.pin})
        assert login.status_code == 200, login.text
        assert (await http.get(f"{till}/static/till.js")).status_code == 200  # the page's script came with the wheel
        receipt = await sell(http, till, [(COFFEE, 2)], cashier=cashier.login)

        async with signed_in(console, DEMO_USERS[0].login, DEMO_USERS[0].password or "", verify=trust) as admin:  # the demo's admin, as its banner says
            async def in_console() -> list[dict[str, object]]:
                sales = (await admin.get("/api/sales")).json()
                return [sale for sale in sales if sale["event_id"] == receipt["sale"]]

            [sale] = await wait_until(in_console, timeout=30)
        assert sale["total_minor"] == 2 * 499
    finally:
        await http.aclose()
        demo.send_signal(signal.SIGINT)
        returncode = await trio.to_thread.run_sync(demo.wait, 60)
    assert returncode == 0, _logs(log_path, outside / "state")
    assert (outside / "state" / "store-001").is_dir()  # the demo's state went where it was told, not into the wheel
