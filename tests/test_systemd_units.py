"""The shipped systemd units work as shipped: they verify against the installed layout, expose at most 3.0 to
`systemd-analyze security` while the edge still reaches its devices and the network, take every secret the
configs name through LoadCredential=, every hub instance gets its own console port, and the edge keeps its state
in its writable state directory. configs/install.sh, run into a temporary root, makes that layout, and the hub
and the edge it installed start from it as their units would start them."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from hub.audit.checkpoints import load_signing_key
from hub.tenancy.provisioning import StoreCertificates, write_bundle
from hub.tenancy.service import StoreRecord
from mocks.network_printer import MockNetworkPrinter
from novapos.cli.main import CONFIGS, parser
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from novapos.deploy import hub_config
from novapos.local_ca import CA_CERT, issue
from novapos.tls import TlsSettings

UNITS = CONFIGS / "systemd"  # as installed: the package's copy, not the repository's
HUB_INSTANCES = ("8700", "8701")
EXPOSURE_LIMIT = 3.0
CREDENTIAL = re.compile(r"\$\{CREDENTIALS_DIRECTORY\}/([^\"]+)")


def settings(text: str) -> dict[str, list[str]]:
    """A unit's [Service] settings, each with every value it is given (DeviceAllow=, LoadCredential= repeat)."""
    found: dict[str, list[str]] = {}
    service = False
    for line in text.splitlines():
        if line.startswith("["):
            service = line.strip() == "[Service]"
        elif service and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def credentials(name: str) -> dict[str, str]:
    """A unit's LoadCredential= lines: the name the service reads under $CREDENTIALS_DIRECTORY, the file it is
    loaded from."""
    return dict(line.split(":", 1) for line in settings((UNITS / name).read_text()).get("LoadCredential", []))


def exposure(path: Path) -> float:
    """`systemd-analyze security --offline=yes`'s overall exposure of a unit file (0 to 10; lower is safer)."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(path)],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found[1])


def unit(name: str) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(strict=False, interpolation=None)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parsed.read(UNITS / name)
    return parsed


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A machine's file system after the documented install: the package in a venv under /opt/novapos
    (only its `novapos` command matters here), the units in /etc/systemd/system, hub instances enabled."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: `make test` installs it (apt-get install systemd)"
    root = tmp_path / "root"
    system_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)  # the targets the units name
    command = root / "opt/novapos/bin/novapos"
    command.parent.mkdir(parents=True)
    command.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m novapos.cli \"$@\"\n")
    command.chmod(0o755)
    installed = root / "etc/systemd/system"
    installed.mkdir(parents=True)
    for shipped in UNITS.glob("*.service"):
        shutil.copy(shipped, installed)
    for instance in HUB_INSTANCES:
        (installed / f"novapos-hub@{instance}.service").symlink_to("novapos-hub@.service")
    return root


@pytest.mark.parametrize("name", ["novapos-edge.service", *(f"novapos-hub@{i}.service" for i in HUB_INSTANCES)])
def test_the_shipped_units_verify_against_the_installed_layout(root: Path, name: str) -> None:
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(root / "etc/systemd/system" / name)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_verification_notices_a_missing_command(root: Path) -> None:
    """Guard for the test above: verify really looks at the installed layout."""
    (root / "opt/novapos/bin/novapos").unlink()
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                             str(root / "etc/systemd/system/novapos-edge.service")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "/opt/novapos/bin/novapos" in result.stderr


def test_each_hub_instance_gets_its_own_console_port() -> None:
    exec_start = unit("novapos-hub@.service")["Service"]["ExecStart"]
    ports = []
    for instance in HUB_INSTANCES:
        argv = shlex.split(exec_start.replace("%i", instance))
        assert argv[0] == "/opt/novapos/bin/novapos"
        args = parser().parse_args(argv[1:])
        assert args.command == "hub"
        ports.append(args.http_port)
    assert ports == [int(i) for i in HUB_INSTANCES]


def test_the_edge_unit_runs_in_its_writable_state_directory() -> None:
    service = unit("novapos-edge.service")["Service"]
    assert service["ProtectSystem"] == "strict"  # everything but the state directory is read-only
    assert service["WorkingDirectory"] == f"/var/lib/{service['StateDirectory']}"


def test_the_edge_keeps_a_relative_state_folder_in_STATE_DIRECTORY(tmp_path: Path) -> None:
    """As systemd starts it: STATE_DIRECTORY set, the current folder not writable (here: not used)."""
    state_directory, cwd = tmp_path / "var-lib-novapos", tmp_path / "cwd"
    state_directory.mkdir()
    cwd.mkdir()
    config = tmp_path / "store.toml"
    config.write_text((CONFIGS / "demo-store.toml").read_text().replace("port = 8600", f"port = {free_port()}"))
    env = {**os.environ, "STATE_DIRECTORY": str(state_directory), "NOVAPOS_NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    edge = subprocess.Popen([sys.executable, "-m", "novapos.cli", "edge", "--config", str(config)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    database = state_directory / ".state/store-001/edge.sqlite3"
    try:
        deadline = time.monotonic() + 60
        while not database.exists():
            assert edge.poll() is None, edge.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the edge made no database in STATE_DIRECTORY"
            time.sleep(0.1)
    finally:
        edge.send_signal(signal.SIGTERM)
        _, errors = edge.communicate(timeout=60)
    assert edge.returncode == 0, errors
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("name", ["novapos-edge.service", "novapos-hub@.service"])
def test_each_unit_exposes_at_most_3_to_systemd_analyze_security(tmp_path: Path, name: str) -> None:
    installed = tmp_path / name.replace("@.", "@8700.")  # a template is analysed as one of its instances
    shutil.copy(UNITS / name, installed)
    assert exposure(installed) <= EXPOSURE_LIMIT
    # Guard: the score is the sandboxing's, not an artefact of the file: without it the unit is exposed.
    text = installed.read_text()
    installed.write_text(text[:text.index("# Sandboxing")] + text[text.index("[Install]"):])
    assert exposure(installed) > 5.0


def test_the_edge_still_reaches_serial_hid_and_usb_devices_and_the_network() -> None:
    edge = settings((UNITS / "novapos-edge.service").read_text())
    # The host's /dev (hotplug: a scanner plugged in after the start appears), its groups (dialout, novapos-devices own
    # the nodes: a user namespace would map them to nobody), its network; the cgroup narrows the devices.
    for isolating in ("PrivateDevices", "PrivateUsers", "PrivateNetwork", "IPAddressDeny"):
        assert edge.get(isolating, ["no"])[-1] == "no", isolating
    assert edge["SupplementaryGroups"] == ["dialout novapos-devices"]
    rules = (CONFIGS / "udev/70-novapos.rules").read_text()
    assert "plugdev" not in rules.replace("not the shared plugdev", "") and rules.count('GROUP="novapos-devices"') == 2
    assert edge["DevicePolicy"] == ["closed"]
    allowed = dict(line.split() for line in edge["DeviceAllow"])
    for kind in ("char-ttyS", "char-ttyUSB", "char-ttyACM", "char-hidraw", "char-usb_device"):
        assert allowed.get(kind) == "rw", kind
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(edge["RestrictAddressFamilies"][-1].split())


def test_the_usb_serial_modules_are_loaded_before_the_edge_resolves_its_device_groups() -> None:
    """DeviceAllow=char-ttyUSB/char-ttyACM name groups of /proc/devices, looked up when the unit starts: without
    usbserial and cdc_acm loaded then, a reader plugged in later is refused (EPERM) until a restart."""
    unit: dict[str, list[str]] = {}
    in_unit = False
    for line in (UNITS / "novapos-edge.service").read_text().splitlines():
        if line.startswith("["):
            in_unit = line.strip() == "[Unit]"
        elif in_unit and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            unit.setdefault(key, []).extend(value.split())
    for module in ("usbserial", "cdc_acm"):
        assert f"modprobe@{module}.service" in unit["Wants"] and f"modprobe@{module}.service" in unit["After"]


def test_every_secret_the_installed_hub_config_names_is_a_credential_of_its_unit() -> None:
    named = set(CREDENTIAL.findall(hub_config((CONFIGS / "hub.toml").read_text())))
    loaded = credentials("novapos-hub@.service")
    assert named <= set(loaded), f"hub.toml reads {named - set(loaded)}, which the unit does not load"
    assert {"nats.seed", "database-url", "gift-cards.key", "audit-signing.key", "tls.key"} <= set(loaded)
    assert set(credentials("novapos-edge.service")) == {"nats.seed", "tls.key"}
    for name, source in (*loaded.items(), *credentials("novapos-edge.service").items()):
        assert source.startswith("/etc/novapos/credentials/") and source.endswith(f"/{name}"), source


MDWE = ("import ctypes, os, sys\n"
        "assert ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n")
"""Run argv under the kernel's memory-deny-write-execute (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN): what the units'
MemoryDenyWriteExecute=yes enforces, so a library that needs writable code fails here, not on a store box."""


def wheel(tmp_path: Path) -> Path:
    """This checkout's wheel, built from a copy (a build/ folder must not appear in the worktree)."""
    repo = Path(__file__).resolve().parent.parent
    sources = tmp_path / "sources"
    shutil.copytree(repo, sources, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", sources],
                   check=True, capture_output=True, timeout=300)
    return next((tmp_path / "dist").glob("novapos-*.whl"))


def start_as_unit(root: Path, name: str, run: Path, env: dict[str, str], instance: str = "") -> subprocess.Popen[str]:
    """Start the installed service as systemd would: its ExecStart (under root), its WorkingDirectory and
    STATE_DIRECTORY, its LoadCredential= files copied (0400) into a fresh CREDENTIALS_DIRECTORY, MDWE on."""
    service = settings((root / "etc/systemd/system" / name).read_text())
    credentials_directory = run / "credentials"
    credentials_directory.mkdir(parents=True, mode=0o500)
    for credential, source in (line.split(":", 1) for line in service["LoadCredential"]):
        shutil.copyfile(root / source.lstrip("/"), credentials_directory / credential)
        (credentials_directory / credential).chmod(0o400)
    argv = [str(root / arg.lstrip("/")) if arg.startswith(("/opt/", "/etc/")) else arg
            for arg in shlex.split(service["ExecStart"][0].replace("%i", instance))]
    state = root / "var/lib" / service["StateDirectory"][0]
    return subprocess.Popen([sys.executable, "-c", MDWE, *argv], cwd=state, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env, "CREDENTIALS_DIRECTORY": str(credentials_directory),
                                 "STATE_DIRECTORY": str(state), "NOVAPOS_LOG_FORMAT": "json"})


def healthy(process: subprocess.Popen[str], port: int, ca: Path, key: str, ready: str) -> None:
    """Wait for the process's /healthz (HTTPS, its certificate from `ca`) to say `key`: `ready` (a failure message
    with its log otherwise)."""
    verify = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
        try:
            if httpx.get(f"https://127.0.0.1:{port}/healthz", verify=verify, timeout=5).json().get(key) == ready:
                return
        except (httpx.HTTPError, ValueError):
            pass
        assert time.monotonic() < deadline, f"/healthz had no {key}: {ready} in 90 s"
        time.sleep(0.2)


@pytest.mark.install
def test_install_sh_makes_the_layout_and_the_installed_hub_and_edge_start_from_it(
        tmp_path: Path, nats_server: EmbeddedNats, database_url: str, printer: MockNetworkPrinter) -> None:
    root = tmp_path / "root"
    hub_secrets = root / "etc/novapos/credentials/hub"
    hub_secrets.mkdir(parents=True)
    # What the operator provides: the hub's NATS identity (here the test server's), the database's URL, the hub's
    # certificate and key from the CA that signed the NATS server's; the store's come in its bundle.
    shutil.copyfile(nats_server.hub_credentials, hub_secrets / "nats.seed")  # type: ignore[arg-type]
    (hub_secrets / "database-url").write_text(database_url + "\n")
    ca = nats_server.ca_dir / CA_CERT
    certificate = issue(nats_server.ca_dir, "hub", ["127.0.0.1"], out=tmp_path / "hub-tls")
    shutil.copyfile(certificate.key_file, hub_secrets / "tls.key")
    bundle = tmp_path / "bundle"
    write_bundle(bundle, StoreRecord("demo", "store-001", "north", "Store 1", "active", None, None), "EUR",
                 ["till-1"], nats_server.url, nats_server.store_credentials("demo", "store-001").read_text().strip(),
                 hub_tls=TlsSettings(ca_file=ca), certificates=StoreCertificates(nats_server.ca_dir, ("127.0.0.1",)))
    package = wheel(tmp_path)
    shipped = zipfile.ZipFile(package).namelist()
    assert "configs/install.sh" in shipped and "configs/udev/70-novapos.rules" in shipped  # an upgrade runs it
    install = [str(CONFIGS / "install.sh"), "--root", str(root), "--hub", "--edge", "--store-bundle", str(bundle),
               "--package", str(package)]
    result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "made" in result.stdout and "credentials/hub/nats.seed" not in result.stdout  # the operator's kept
    assert "Before starting, provide" not in result.stdout  # nothing is missing
    for name, source in (("hub.pem", certificate.cert_file), ("ca.pem", ca)):
        shutil.copyfile(source, root / "etc/novapos/tls" / name)
    (hub_secrets / "tls.key").chmod(0o644)  # an operator's slip, which the second run corrects

    # The layout: a system user without a login, root-only secrets, configs its group reads, state it owns.
    user = next(line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
                if line.startswith("novapos:"))
    assert int(user[2]) < 1000 and user[6].endswith("nologin")
    for folder, mode, uid, gid in (("etc/novapos", 0o750, 0, user[3]), ("etc/novapos/credentials", 0o700, 0, 0),
                                   ("etc/novapos/credentials/hub", 0o700, 0, 0),
                                   ("var/lib/novapos", 0o700, user[2], user[3]),
                                   ("var/lib/novapos-hub", 0o700, user[2], user[3])):
        info = (root / folder).stat()
        assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (mode, int(uid), int(gid)), folder
    assert (root / "etc/udev/rules.d/70-novapos.rules").read_text() == (CONFIGS / "udev/70-novapos.rules").read_text()
    assert any(line.startswith("novapos-devices:") for line in (root / "etc/group").read_text().splitlines())
    made = {path.name: path.read_text() for path in hub_secrets.iterdir()}
    assert re.fullmatch(r"[0-9a-f]{64}\n", made["gift-cards.key"])
    load_signing_key(hub_secrets / "audit-signing.key", tmp_path / "checkpoints")  # a valid Ed25519 key

    # A second run (an upgrade) keeps every secret and config (a new gift card key would lose every card), and
    # makes the secrets the operator added (0644 here) root's alone.
    configs = {name: (root / "etc/novapos" / name).read_text() for name in ("hub.toml", "store.toml")}
    result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert {path.name: path.read_text() for path in hub_secrets.iterdir()} == made
    assert {name: (root / "etc/novapos" / name).read_text() for name in configs} == configs
    for path in (*hub_secrets.iterdir(), *(root / "etc/novapos/credentials/edge").iterdir()):
        assert path.stat().st_mode & 0o777 == 0o600, path

    # systemd accepts the installed units against the installed layout (the venv's real novapos command).
    system_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    installed = root / "etc/systemd/system"
    (installed / "novapos-hub@8700.service").symlink_to("novapos-hub@.service")
    for name in ("novapos-edge.service", "novapos-hub@8700.service"):
        verified = subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(installed / name)],
                                  capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr

    # Started as the units start them, every secret read from $CREDENTIALS_DIRECTORY: the hub reaches PostgreSQL
    # (its URL is nowhere else) and NATS (as the hub user), the edge reaches the hub's NATS as its store.
    edge_port, hub_port = free_port(), free_port()
    for name in ("hub.toml", "store.toml"):  # the certificates' absolute paths, under the root here
        config = root / "etc/novapos" / name
        config.write_text(config.read_text().replace('"/etc/novapos/tls/', f'"{root}/etc/novapos/tls/'))
    with (root / "etc/novapos/store.toml").open("a") as store_toml:  # what the operator adds to the bundle's
        store_toml.write(f'\n[http]\nport = {edge_port}\n\n[[devices.rules]]\nname = "receipt-printer"\n'
                         f'driver = "escpos-network"\nhost = "127.0.0.1"\nport = {printer.port}\n')
    hub = start_as_unit(root, "novapos-hub@.service", tmp_path / "run-hub", {"NOVAPOS_NATS_URL": nats_server.url},
                        instance=str(hub_port))
    edge = start_as_unit(root, "novapos-edge.service", tmp_path / "run-edge", {})
    try:
        healthy(hub, hub_port, ca, "status", "ok")
        healthy(edge, edge_port, ca, "hub_link", "connected")
        assert (root / "var/lib/novapos/.state/store-001/edge.sqlite3").exists()
    finally:
        for process in (edge, hub):
            process.send_signal(signal.SIGTERM)
        logs = [process.communicate(timeout=60)[1] for process in (edge, hub)]
    assert (edge.returncode, hub.returncode) == (0, 0), logs


@pytest.mark.parametrize("argv, says", [
    ([], "say what this machine runs: --edge, --hub or both"),
    (["--hub", "--bogus"], "unknown option --bogus"),
    (["--hub", "--root"], "--root needs a value"),
    (["--hub", "--store-bundle", "/tmp"], "--store-bundle is for --edge"),
    (["--edge", "--root", "/nonexistent/folder"], "is not a folder"),
])
def test_install_sh_refuses_what_it_cannot_do_before_touching_anything(tmp_path: Path, argv: list[str],
                                                                         says: str) -> None:
    result = subprocess.run([str(CONFIGS / "install.sh"), *argv], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
