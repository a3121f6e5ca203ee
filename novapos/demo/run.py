"""`novapos demo`: the whole system on one machine, as separate processes, the way a store and a hub run.

Order of start: embedded PostgreSQL, the demo's tenancy provisioned there (tenant demo, region north,
store store-001 and its NKEY), embedded NATS with the authorization generated from it (unless external
URLs are given), the simulated devices, the hub and the store edge, each with its own credentials. Stop is the reverse. Each process is real: the edge and the hub are
`novapos edge` and `novapos hub` children talking over NATS, exactly as in production.

TLS is on, as in production: a local CA under `<state>/tls` (made on the first run, kept after) issues the
certificates of the embedded NATS, the hub and the store; the web till and the console answer on https://
(a browser asks once to trust `<state>/tls/ca.pem`, or to accept the certificate) and every NATS connection
is tls://.

`--cluster` runs three NATS servers in a cluster (novapos.demo.embedded_cluster) instead of one, the hub's
streams replicated on each: stop one of them (its pid is in `<state>/nats-cluster/n<i>/nats-server.pid`) and the
till sells on, the hub ingests on.

`--leaf` runs the store through a leaf node of its own (novapos.leaf, `novapos leaf` as a child before the edge):
the embedded NATS gets JetStream domain "hub" and a leafnode listener, the store's user logs in as a leaf node,
the store is flagged as running one in the hub's records, and the edge publishes to the leaf on loopback. Pause the hub's NATS
(`kill -STOP $(cat <state>/nats/nats-server.pid)`, then `kill -CONT`): the till sells on, its outbox stays empty
and its /healthz counts the sales waiting on the leaf until the hub sources them.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

import tomli_w

from mocks.acquirer import terminal_reporter
from mocks.store import SimulatedStore
from novapos.cli.main import CONFIGS
from novapos.demo.embedded_cluster import EmbeddedNatsCluster
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.demo.payments import demo_acquirer, hub_settings
from novapos.demo.processes import free_port
from novapos.demo.provision import DEMO_USERS, DemoCredentials, provision_demo
from novapos.local_ca import ensure_ca, ensure_issued

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
CLUSTER_SIZE = 3
"""Servers in `novapos demo --cluster`: the smallest cluster that keeps a majority with one server down."""
TLS_DIR = "tls"
"""The demo's local CA and certificates, under its state folder."""


def write_store_config(path: Path, state_dir: Path, till_port: int, devices: dict[str, Any] | None = None,
                       credentials: Path | None = None, tls: dict[str, str] | None = None,
                       leaf: dict[str, Any] | None = None) -> None:
    """The demo store config, pointed at the demo's port, state folder, (when given) simulated devices, the
    store's NATS credentials, its [tls] and its [leaf]."""
    data = tomllib.loads((CONFIGS / "demo-store.toml").read_text())
    data["http"]["port"] = till_port
    data["state"]["dir"] = str(state_dir / "store-001")
    if credentials is not None:
        data["nats"]["credentials"] = str(credentials)
    if tls is not None:
        data["tls"] = tls
    if devices is not None:
        data["devices"] = devices
    if leaf is not None:
        data["leaf"] = leaf
    path.write_text(tomli_w.dumps(data))


def demo_gift_card_key(state_dir: Path) -> Path:
    """The demo's own HMAC key for gift card numbers (hub.giftcards.numbers), made once in the state folder and kept
    across runs: the seeded demo card and the hub must hash its number with the same key."""
    key = state_dir / "gift-cards.key"
    if not key.exists():
        key.write_text(secrets.token_hex(32) + "\n")
        key.chmod(0o600)
    return key


def demo_tls(state_dir: Path, name: str, nats_ca: bool) -> dict[str, str]:
    """[tls] for the demo's `name` (hub, store-001): its certificate from the demo's CA (issued on first use)
    for 127.0.0.1 and localhost, and the CA to verify the embedded NATS with (`nats_ca`; an external NATS has
    its own)."""
    folder = state_dir / TLS_DIR
    ca = ensure_ca(folder)
    made = ensure_issued(folder, name, ["127.0.0.1", "localhost"], client=True)  # HTTPS and NATS client
    table = {"cert_file": str(made.cert_file), "key_file": str(made.key_file)}
    return {**table, "ca_file": str(ca.cert_file)} if nats_ca else table


def write_hub_config(state_dir: Path, payments: dict[str, str] | None = None,
                     tls: dict[str, str] | None = None, replicas: int = 1,
                     leaf: bool = False) -> Path:
    """The shipped hub config with the audit checkpoints (and their signing key) under the demo's state folder:
    `novapos hub audit verify --config <state>/hub.toml` checks the demo's chain against them; the gift card
    numbers' HMAC key (made once, in the state folder); and, when given, the [payments] settings of the demo's
    acquirer simulator; its streams' `replicas` (3 on the demo's cluster); with `leaf`, [leaf] check_every_s 5 s."""
    data = tomllib.loads((CONFIGS / "hub.toml").read_text())
    data["stream"]["replicas"] = replicas
    data["audit"]["checkpoint_dir"] = str((state_dir / "audit-checkpoints").resolve())
    data["payments"].update(payments or {})
    data["gift_cards"] = {"key_file": str(demo_gift_card_key(state_dir).resolve())}
    if tls is not None:
        data["tls"] = tls
    if leaf:
        data["leaf"] = {"check_every_s": 5}
    path = state_dir / "hub.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def wait_healthy(url: str, process: subprocess.Popen[bytes], name: str, ca_file: Path,
                 timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    context = ssl.create_default_context(cafile=ca_file)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting; see its log above")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} did not answer {url}/healthz within {timeout:.0f} s")


def wait_listening(port: int, process: subprocess.Popen[bytes], name: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Until something accepts on 127.0.0.1:`port` (`name`, a child that has no /healthz)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting; see its log above")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


class Demo:
    def _mock_command(self) -> str:
        """How to reach this demo's simulated devices from another terminal, wherever it was installed."""
        script = Path(sys.executable).parent / "novapos"
        command = os.path.relpath(script) if script.is_relative_to(Path.cwd()) else str(script)
        default = self.state_dir == Path(".state/demo").resolve()
        return f"{command} mock" + ("" if default else f" --state-dir {self.state_dir}")

    def __init__(self, state_dir: Path, *, till_port: int = 8600, console_port: int = 8700,
                 printer_port: int = 0, acquirer_port: int = 0, cluster: bool = False, leaf: bool = False) -> None:
        if leaf and cluster:
            raise ValueError("--leaf runs one NATS server: not with --cluster")
        self.state_dir = state_dir.resolve()
        self.cluster = cluster
        self.leaf = leaf
        self.till_port = till_port
        self.console_port = console_port
        self.printer_port = printer_port
        self.acquirer_port = acquirer_port
        self._stop_requested = False

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_requested = True

    def _spawn(self, stack: ExitStack, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # Its own session: a Ctrl-C in the terminal reaches only the demo, which stops the children
        # itself, in order (the edge before the hub), each with one SIGTERM.
        process = subprocess.Popen([sys.executable, "-m", "novapos.cli", *argv], env=env, start_new_session=True)

        def stop() -> None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within 15 s: killing it", name)
                    process.kill()
                    process.wait()
            log.info("%s stopped (exit code %s)", name, process.returncode)
        stack.callback(stop)
        return process

    def _nats(self, credentials: DemoCredentials) -> EmbeddedNats | EmbeddedNatsCluster:
        """The embedded NATS, not started: one server, or with --cluster three in a cluster on loopback."""
        if self.cluster:
            log.info("starting an embedded NATS cluster of %d servers (JetStream, TLS on clients and routes) under "
                     "%s, with per-store credentials", CLUSTER_SIZE, self.state_dir)
            return EmbeddedNatsCluster(self.state_dir / "nats-cluster", CLUSTER_SIZE,
                                       authorization=credentials.authorization, hub_credentials=credentials.hub,
                                       ca_dir=self.state_dir / TLS_DIR)
        log.info("starting embedded NATS (JetStream, TLS) under %s, with per-store credentials%s", self.state_dir,
                 ", JetStream domain hub and a leafnode listener for the store's leaf node" if self.leaf else "")
        return EmbeddedNats(self.state_dir / "nats", authorization=credentials.authorization,
                            hub_credentials=credentials.hub, ca_dir=self.state_dir / TLS_DIR,
                            domain="hub" if self.leaf else None, leafnode_port=free_port() if self.leaf else None)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        with ExitStack() as stack:
            if not env.get("NOVAPOS_DATABASE_URL"):
                log.info("starting embedded PostgreSQL under %s", self.state_dir)
                env["NOVAPOS_DATABASE_URL"] = stack.enter_context(EmbeddedPostgres(self.state_dir / "postgres")).url()
            credentials = None
            embedded = not env.get("NOVAPOS_NATS_URL")
            if self.leaf and not embedded:
                log.error("--leaf needs the demo's own NATS (a leafnode listener, JetStream domain hub): unset "
                          "NOVAPOS_NATS_URL")
                return 2
            leaf: dict[str, Any] | None = None
            ca_file = ensure_ca(self.state_dir / TLS_DIR).cert_file
            if embedded:  # ours: it runs with the authorization of the hub's records, and TLS
                credentials = provision_demo(env["NOVAPOS_DATABASE_URL"], self.state_dir / "credentials",
                                             demo_gift_card_key(self.state_dir), leaf=self.leaf)
                nats = self._nats(credentials)
                stack.enter_context(nats)
                env["NOVAPOS_NATS_URL"] = nats.url
                if self.leaf and isinstance(nats, EmbeddedNats):
                    leaf = {"hub_url": nats.leaf_url, "port": free_port(),
                            "dir": str(self.state_dir / "store-001" / "leaf")}
            console_url = f"https://127.0.0.1:{self.console_port}"
            acquirer = stack.enter_context(demo_acquirer(self.state_dir, self.acquirer_port, console_url, ca_file))
            hardware = stack.enter_context(SimulatedStore(self.state_dir, printer_port=self.printer_port,
                                                          report_approval=terminal_reporter(acquirer.url)))
            store_config = self.state_dir / "store.toml"
            base_devices = tomllib.loads((CONFIGS / "demo-store.toml").read_text())["devices"]
            write_store_config(store_config, self.state_dir, self.till_port, hardware.devices(base_devices),
                               credentials.store if credentials else None, demo_tls(self.state_dir, "store-001", embedded),
                               leaf)
            hub_config = ["--config", str(write_hub_config(self.state_dir, hub_settings(acquirer),
                                                           demo_tls(self.state_dir, "hub", embedded),
                                                           CLUSTER_SIZE if self.cluster and embedded else 1,
                                                           leaf is not None)),
                          "--http-port", str(self.console_port)]
            hub_env = {**env, "NOVAPOS_NATS_CREDENTIALS": str(credentials.hub)} if credentials else env
            hub = self._spawn(stack, "hub", ["hub", *hub_config], hub_env)
            wait_healthy(console_url, hub, "the hub", ca_file)
            children = [("hub", hub)]
            if leaf is not None:  # the store's own nats-server, before the edge that publishes to it
                leaf_node = self._spawn(stack, "store leaf node", ["leaf", "--config", str(store_config)], env)
                wait_listening(leaf["port"], leaf_node, "the store's leaf node")
                children.append(("store leaf node", leaf_node))
            edge = self._spawn(stack, "store edge", ["edge", "--config", str(store_config)], env)
            till_url = f"https://127.0.0.1:{self.till_port}"
            wait_healthy(till_url, edge, "the store edge", ca_file)

            print(f"\n  NovaPOS demo is running.\n"
                  f"    web till     {till_url}/\n"
                  f"    hub console  {console_url}/\n"
                  f"    people       {_demo_people()}\n"
                  f"    devices      simulated: printer on 127.0.0.1:{hardware.printer.port}, HID and serial scanners, drawers,\n"
                  f"                 a payment terminal and a customer display; play with them from another\n"
                  f"                 terminal: {self._mock_command()} help\n"
                  f"    payments     simulated card acquirer and QR wallet at {acquirer.url}/ : a QR payment's\n"
                  f"                 pay page ({acquirer.url}/pay/<ref>) is listed there while it waits\n"
                  f"    TLS          certificates from the demo's CA {ca_file}: trust it in the browser,\n"
                  f"                 or accept the certificate once\n"
                  f"    NATS         {env['NOVAPOS_NATS_URL']}"
                  f"{f' (per-store NKEY credentials in {credentials.hub.parent})' if credentials else ''}\n"
                  + (f"    leaf node    the store's own nats-server on nats://127.0.0.1:{leaf['port']}, a leaf of "
                     f"{leaf['hub_url']}\n" if leaf else "") +
                  f"    PostgreSQL   {env['NOVAPOS_DATABASE_URL']}\n"
                  f"  Press Ctrl-C to stop.\n", flush=True)
            while not self._stop_requested:
                for name, process in (*children, ("store edge", edge)):
                    if process.poll() is not None:
                        log.error("%s exited unexpectedly with code %s; stopping the demo", name, process.returncode)
                        return 1
                time.sleep(0.2)
            log.info("stopping the demo: store edge, %shub, simulated devices, PostgreSQL, NATS",
                     "leaf node, " if leaf else "")
        return 0


def _demo_people() -> str:
    """The demo's sign-ins for the banner, from the one list the demo provisions (demo-only secrets)."""
    return "; ".join(f"{user.login} / {', '.join(filter(None, (user.password, user.pin and 'till PIN ' + user.pin)))} "
                     f"({user.grant.role.value})" for user in DEMO_USERS)
