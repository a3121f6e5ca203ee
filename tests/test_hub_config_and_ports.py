"""The hub's config is checked like the store's, and a port already in use is one sentence and exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from novapos.config import ConfigError, load_hub
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from tests.conftest import CONFIGS

HUB = (CONFIGS / "hub.toml").read_text()


def test_the_shipped_hub_config_loads() -> None:
    config = load_hub(CONFIGS / "hub.toml")
    assert config.tenants == ("demo",)
    assert (config.http_host, config.http_port, config.ingest_batch) == ("127.0.0.1", 8700, 1024)


@pytest.mark.parametrize(("change", "says"), [
    (lambda t: t.replace('tenants = ["demo"]', 'tenants = "demo"'), "tenants must be a list of at least one name such as [\"demo\"], got 'demo'"),
    (lambda t: t.replace('tenants = ["demo"]', "tenants = []"), "tenants must be a list of at least one name"),
    (lambda t: t.replace('tenants = ["demo"]', 'tenants = ["demo", "acme shop"]'), "may use only letters, digits"),
    (lambda t: t.replace('tenants = ["demo"]', 'tenants = ["demo", "demo"]'), "tenants must be unique"),
    (lambda t: t.replace('tenants = ["demo"]', 'tenant = "demo"'), "unknown setting(s) tenant"),
    (lambda t: t.replace("port = 8700", "prot = 8700"), "unknown setting(s) [http] prot"),
    (lambda t: t.replace("port = 8700", "port = 87000"), "[http] port must be from 0 to 65535"),
    (lambda t: t.replace("port = 8700", 'port = "8700"'), "[http] port must be a whole number"),
    (lambda t: t.replace('host = "127.0.0.1"', 'host = ""'), "[http] host must not be empty"),
    (lambda t: t.replace("batch = 1024", "batch = 0"), "[ingest] batch must be from 1 to 4096"),
    (lambda t: t.replace("batch = 1024", "batch = 50000"), "[ingest] batch must be from 1 to 4096"),
    (lambda t: t.replace('url = ""', "url = 5", 1), "[nats] url must be text"),
])
def test_bad_hub_settings_are_refused_with_the_reason(tmp_path: Path, change, says: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hub.toml"
    path.write_text(change(HUB))
    with pytest.raises(ConfigError) as refused:
        load_hub(path)
    assert says in str(refused.value)
    assert str(path) in str(refused.value)


def test_ingest_batch_is_read_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(HUB.replace("batch = 1024", "batch = 64"))
    assert load_hub(path).ingest_batch == 64


def test_a_bad_hub_config_is_exit_2_and_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(HUB.replace('tenants = ["demo"]', 'tenants = "demo"'))
    result = subprocess.run([sys.executable, "-m", "novapos.cli", "hub", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "tenants must be a list of at least one name" in result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 another process (here: this one) is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _refused_for_busy_port(argv: list[str], env: dict[str, str], port: int) -> None:
    result = subprocess.run([sys.executable, "-m", "novapos.cli", *argv], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    assert (f"port {port} on 127.0.0.1 is already in use: stop the other process or set [http] port"
            in result.stderr), result.stderr
    assert "Traceback" not in result.stderr and "ExceptionGroup" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"novapos {argv[0]}: port {port}")


def test_edge_on_a_busy_port_is_exit_2_and_one_sentence(tmp_path: Path, busy_port: int) -> None:
    config = tmp_path / "store.toml"
    config.write_text((CONFIGS / "demo-store.toml").read_text()
                      .replace("port = 8600", f"port = {busy_port}")
                      .replace('dir = ".state/store-001"', f'dir = "{tmp_path / "state"}"'))
    # No NATS needed: the edge sells offline, and the port is taken whether NATS is there or not.
    env = {**os.environ, "NOVAPOS_NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    _refused_for_busy_port(["edge", "--config", str(config)], env, busy_port)


def test_hub_on_a_busy_port_is_exit_2_and_one_sentence(tmp_path: Path, busy_port: int, nats_server: EmbeddedNats,
                                                       database_url: str) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(HUB.replace("port = 8700", f"port = {busy_port}"))
    env = {**os.environ, "NOVAPOS_NATS_URL": nats_server.url, "NOVAPOS_DATABASE_URL": database_url}
    _refused_for_busy_port(["hub", "--config", str(config)], env, busy_port)
