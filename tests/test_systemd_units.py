"""The shipped systemd units work as shipped: they verify against the installed layout, every hub
instance gets its own console port, and the edge keeps its state in its writable state directory."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from novapos.cli.main import CONFIGS, parser
from novapos.demo.processes import free_port

UNITS = CONFIGS / "systemd"  # as installed: the package's copy, not the repository's
HUB_INSTANCES = ("8700", "8701")


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
