"""The previous release, for the upgrade tests: its source taken from this clone's history with `git archive`, run
as child processes with this venv's packages (its own code first on PYTHONPATH), configured from its own shipped
configs, as an operator's store box or hub still running it would be."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from novapos.demo.processes import ManagedProcess, free_port

PREVIOUS_RELEASE = "17713a0"
"""The last release before this one (issue 11's end): the edge and hub a rolling upgrade starts from."""

PREVIOUS_EDGE_SCHEMA = 9
"""The store's SQLite schema version (PRAGMA user_version) the previous release leaves."""

REPOSITORY = Path(__file__).resolve().parent.parent


def extract(into: Path, commit: str = PREVIOUS_RELEASE) -> Path:
    """The release's source tree under `into`; a clone without that commit fails the test saying how to get it."""
    found = subprocess.run(["git", "-C", str(REPOSITORY), "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        pytest.fail(f"the previous release (commit {commit}) is not in this clone's history, and the upgrade tests "
                    f"run it: clone with full history (git fetch --unshallow) ({found.stderr.strip()})")
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPOSITORY), "archive", "--format=tar", commit],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def files_at(commit: str, folder: str) -> set[str]:
    """The paths of the files under `folder` at `commit`."""
    listing = subprocess.run(["git", "-C", str(REPOSITORY), "ls-tree", "-r", "--name-only", commit, folder],
                             capture_output=True, text=True, check=True)
    return set(listing.stdout.split())


class Release:
    """One extracted release's source tree: its configs, and `novapos` commands run from it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def env(self) -> dict[str, str]:
        """This environment without NOVAPOS_ overrides, the release's tree ahead of the installed novapos."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("NOVAPOS_")}
        return {**env, "PYTHONPATH": str(self.root)}

    def imports_itself(self) -> bool:
        """Whether a Python run this way imports the release's code, not the installed one."""
        out = subprocess.run([sys.executable, "-c", "import hub, novapos; print(hub.__file__, novapos.__file__)"],
                             cwd=self.root, env=self.env(), capture_output=True, text=True, check=True).stdout
        return all(Path(path).is_relative_to(self.root) for path in out.split())

    def shipped(self, name: str) -> dict[str, Any]:
        """One of the release's shipped configs (configs/NAME), parsed."""
        return tomllib.loads((self.root / "configs" / name).read_text())

    def process(self, name: str, args: list[str], log: Path) -> ManagedProcess:
        """`novapos ARGS` from this release, its output in `log` (not started)."""
        return _InTree(name, [sys.executable, "-m", "novapos.cli", *args], log, self)


class _InTree(ManagedProcess):
    """A ManagedProcess started from the release's tree with its environment."""

    def __init__(self, name: str, argv: list[str], log: Path, release: Release) -> None:
        super().__init__(name, argv, log)
        self._release = release

    def spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(self.argv, stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self._release.root, env=self._release.env(),
                                            start_new_session=True)
        return self.process


def store_config(release: Release, path: Path, state_dir: Path, nats_url: str, credentials: Path,
                 printer_port: int) -> int:
    """The release's demo store config with its own port, state folder, NATS and network printer, written to `path`
    (the file a store box keeps across upgrades); its HTTP port."""
    data = release.shipped("demo-store.toml")
    port = free_port()
    data["http"]["port"] = port
    data["state"]["dir"] = str(state_dir)
    data["nats"] = {"url": nats_url, "credentials": str(credentials)}
    data["devices"] = {"scan_interval": 0.1, "rules": [
        {"name": "receipt-printer", "driver": "escpos-network", "host": "127.0.0.1", "port": printer_port},
        {"name": "drawer-1", "driver": "printer-drawer", "printer": "receipt-printer", "till": "till-1"}]}
    path.write_text(tomli_w.dumps(data))
    return port


def hub_config(path: Path, nats_url: str, credentials: Path, database_url: str) -> int:
    """A hub config both releases read (the settings a hub needs, nothing newer), its audit checkpoints beside it;
    its console port."""
    port = free_port()
    audit = path.parent / f"{path.stem}-audit"
    path.write_text(f'tenants = ["demo"]\n[http]\nport = {port}\n'
                    f'[nats]\nurl = "{nats_url}"\ncredentials = "{credentials}"\n'
                    f'[database]\nurl = "{database_url}"\n'
                    f'[audit]\ncheckpoint_dir = "{audit}"\n')
    return port
