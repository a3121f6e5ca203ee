"""[nats] url may list the members of a cluster: each checked at load (hostile and mistyped lists refused with a
sentence that never shows a password), and a link reaches a listed server when the first one is down."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import trio

from novapos.adapters.nats import NatsLink, server_urls
from novapos.config import ConfigError, load_hub, load_store
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.processes import free_port
from tests.conftest import CONFIGS

CLUSTER = "tls://10.0.0.1:4222, tls://10.0.0.2:4222,tls://nats-3.example:4223"


def _store_with(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "store.toml"
    path.write_text((CONFIGS / "demo-store.toml").read_text().replace('url = ""', f"url = {json.dumps(url)}", 1))
    return path


def test_a_cluster_url_loads_for_store_and_hub_and_splits_into_its_servers(tmp_path: Path) -> None:
    store = load_store(_store_with(tmp_path, CLUSTER))
    hub_path = tmp_path / "hub.toml"
    hub_path.write_text((CONFIGS / "hub.toml").read_text().replace('url = ""', f"url = {json.dumps(CLUSTER)}", 1))
    hub = load_hub(hub_path)
    wanted = ["tls://10.0.0.1:4222", "tls://10.0.0.2:4222", "tls://nats-3.example:4223"]
    assert store.nats_url == hub.nats_url == ",".join(wanted)
    assert server_urls(store.nats_url) == wanted
    assert NatsLink(store.nats_url, "t").require_tls  # a TLS cluster: TLS or nothing on every member


@pytest.mark.parametrize(("url", "says"), [
    ("tls://a:4222,,tls://b:4222", "has an empty entry"),
    ("tls://a:4222,", "has an empty entry"),
    ("tls://a:4222,nats://b:4222", "mixes tls:// and nats://"),
    ("tls://a:4222,tls://a:4222", "lists a:4222 twice"),
    ("tls://a,tls://a:4222", "lists a:4222 twice"),  # the default port is the same server
    ("http://a:4222", "must list servers as nats://host:port or tls://host:port, got http://a:4222"),
    ("a:4222", "got a:4222"),
    ("tls://a:4222/path", "must list servers as"),
    ("tls://:4222", "must list servers as"),
    ("tls://a:0", "port is not a number from 1 to 65535: tls://a:0"),
    ("tls://a:70000", "port is not a number from 1 to 65535"),
    ("tls://a:x", "port is not a number from 1 to 65535"),
    (",".join(f"tls://n{i}:4222" for i in range(17)), "at most 16 servers, got 17"),
    ("tls://a:4222,tls://b\u202e:4222", "must not contain an invisible format character"),
])
def test_bad_server_lists_are_refused_with_the_reason(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(ConfigError, match="store.toml: \\[nats\\] url ") as refused:
        load_store(_store_with(tmp_path, url))
    assert says in str(refused.value)


def test_a_refused_server_is_shown_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_store(_store_with(tmp_path, "nats://a:4222,http://admin:s3cret@b:4222"))
    assert "s3cret" not in str(refused.value) and "admin" not in str(refused.value)
    assert "got http://b:4222" in str(refused.value)


def test_the_environment_url_is_checked_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVAPOS_NATS_URL", "tls://a:4222,tls://a:4222")
    with pytest.raises(ConfigError, match="lists a:4222 twice"):
        load_store(_store_with(tmp_path, "tls://ignored:4222"))


async def test_a_link_reaches_a_listed_server_when_the_first_is_down(nats_server: EmbeddedNats) -> None:
    dead = ",".join(f"tls://127.0.0.1:{free_port()}" for _ in range(3))  # the link shuffles: most tries meet one

    async def connect() -> str:
        link = nats_server.hub_link()
        link = NatsLink(f"{dead},{nats_server.url}", "test-two", credentials=link.credentials, tls=link.tls)
        await link.connect(timeout=5)
        try:
            return link.server
        finally:
            await link.close()
    assert await trio.to_thread.run_sync(asyncio.run, connect()) == nats_server.url


def test_a_store_bundle_takes_a_cluster_url_and_refuses_a_bad_one(capsys: pytest.CaptureFixture[str]) -> None:
    from novapos.cli.main import parser
    base = ["hub", "store", "add", "demo", "store-009", "--region", "north", "--out", "/nonexistent", "--nats-url"]
    assert parser().parse_args([*base, "tls://a:4222 , tls://b:4222"]).nats_url == "tls://a:4222,tls://b:4222"
    with pytest.raises(SystemExit):
        parser().parse_args([*base, "tls://a:4222,nats://b:4222"])
    assert "--nats-url mixes tls:// and nats://" in capsys.readouterr().err
