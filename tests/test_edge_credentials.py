"""The edge when NATS will not have its credentials: a denied publish (which the client sees only as a
timeout) and a refused login are recognised, said once as a credentials problem with what to do, shown on
/healthz, and retried rarely, not hammered; the store sells on meanwhile. A seed file others may read is
refused before it is used."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.storage import forwarder
from edge.app import run_edge
from hub.tenancy.credentials import public_key, read_seed
from hub.tenancy.nats_auth import StoreUser, authorization, install
from novapos.adapters.nats import NatsLink
from novapos.config import ConfigError, StoreConfig, load_hub, load_store
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import ensure_stream, wait_until
from tests.pos import MILK, sell


@pytest.fixture
def two_stores(tmp_path: Path) -> Any:
    server = EmbeddedNats.authorized(tmp_path / "two-stores", stores=(("demo", "store-001"), ("demo", "store-002")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _health(http: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    answer = await http.get(f"{url}/healthz")
    assert answer.status_code == 200, "a store that sells is never failing for its credentials"
    body: dict[str, Any] = answer.json()
    return body if "nats" in body else None


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_a_store_with_another_stores_credentials_is_denied_says_so_once_and_backs_off(
        store_config: StoreConfig, two_stores: EmbeddedNats, http: httpx.AsyncClient,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="novapos.adapters.nats")
    caplog.set_level(logging.INFO, logger="actors.storage.forwarder")
    # store-001's box holding store-002's seed: NATS lets it in, and denies it store-001's subjects
    config = replace(store_config, nats_url=two_stores.url, tls=two_stores.tls_settings(),
                     nats_credentials=two_stores.store_credentials("demo", "store-002"))
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, config)
        receipt = await sell(http, edge.url, [(MILK, 1)])  # the store sells regardless
        assert receipt["seq"] == 1
        health = await wait_until(lambda: _health(http, edge.url))
        assert health["status"] == "degraded" and health["nats"] == "credentials denied"
        assert "permissions" in health["nats_problem"] and health["outbox_depth"] == 1
        await sell(http, edge.url, [(MILK, 2)])  # a kick does not bring the retry forward
        await trio.sleep(3.0)  # without the long back-off the forwarder would have retried several times
        attempts = _said(caplog, "permissions violation for publish to \"novapos.demo.store-001.evt")
        assert len(attempts) == 1, attempts
        errors = [r for r in caplog.records if r.name == "novapos.adapters.nats" and r.levelno == logging.ERROR]
        assert len(errors) == 1 and "NATS denied an operation to this box's credentials" in errors[0].getMessage()
        [warning] = _said(caplog, "refuses this store's credentials")
        assert f"retrying every {forwarder.REFUSED_RETRY_S:.0f} s" in warning
        assert await edge.tree.ask("outbox", "depth") == 2
        nursery.cancel_scope.cancel()


async def test_a_revoked_store_shows_refused_credentials_and_sells_on(
        store_config: StoreConfig, two_stores: EmbeddedNats, http: httpx.AsyncClient) -> None:
    config = replace(store_config, nats_url=two_stores.url, tls=two_stores.tls_settings(),
                     nats_credentials=two_stores.store_credentials("demo", "store-001"))
    assert two_stores.hub_credentials is not None and two_stores.authorization is not None
    await ensure_stream(two_stores)
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, config)
        await sell(http, edge.url, [(MILK, 1)])
        await wait_until(lambda: _depth(edge, 0))  # forwarded: the credentials work

        remaining = StoreUser("demo", "store-002", public_key(read_seed(two_stores.store_credentials("demo", "store-002"))))
        install(two_stores.authorization, authorization(public_key(read_seed(two_stores.hub_credentials)), [remaining]),
                two_stores.pid_file)
        await sell(http, edge.url, [(MILK, 1)])
        health = await wait_until(lambda: _health(http, edge.url))
        assert health["status"] == "degraded" and health["nats"] == "credentials refused"
        assert "novapos hub store rotate" in health["nats_problem"]
        assert await edge.tree.ask("outbox", "depth") == 1
        nursery.cancel_scope.cancel()


async def _depth(edge: Any, expected: int) -> bool:
    return bool(await edge.tree.ask("outbox", "depth") == expected)


def test_a_seed_file_others_may_read_is_refused_before_use(tmp_path: Path, store_config: StoreConfig) -> None:
    seed = tmp_path / "store.seed"
    seed.write_text(store_config.nats_credentials.read_text())  # type: ignore[union-attr]
    seed.chmod(0o644)
    link = NatsLink(store_config.nats_url, "test", credentials=seed)  # refused before any connection: no TLS needed
    with pytest.raises(ConnectionError, match=f"open to group or others \\(mode 0644\\).*chmod 600 {seed}"):
        asyncio.run(link.connect())
    assert link.refusal is not None and link.refusal.kind == "unusable"
    with pytest.raises(ConfigError, match="chmod 600"):  # `novapos edge` stops at start, exit 2
        replace(store_config, nats_credentials=seed).check_runnable()


def test_the_credentials_setting_and_its_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "store.toml"
    config.write_text('tenant = "demo"\nstore = "s1"\ncurrency = "EUR"\n[nats]\nurl = "nats://x:4222"\n'
                      'credentials = "/etc/novapos/store.seed"\n')
    monkeypatch.delenv("NOVAPOS_NATS_CREDENTIALS", raising=False)
    assert load_store(config).nats_credentials == Path("/etc/novapos/store.seed")
    monkeypatch.setenv("NOVAPOS_NATS_CREDENTIALS", str(tmp_path / "other.seed"))
    assert load_store(config).nats_credentials == tmp_path / "other.seed"
    hub = tmp_path / "hub.toml"
    hub.write_text('[nats]\nauthorization = "/etc/nats/auth.conf"\npid_file = "/run/nats.pid"\ncredential = "typo"\n')
    with pytest.raises(ConfigError, match="credential"):  # a mistyped setting is refused, not ignored
        load_hub(hub)
    hub.write_text('[nats]\nauthorization = "/etc/nats/auth.conf"\npid_file = "/run/nats.pid"\n')
    loaded = load_hub(hub)
    assert (loaded.nats_authorization, loaded.nats_pid_file, loaded.nats_credentials) == \
        (Path("/etc/nats/auth.conf"), Path("/run/nats.pid"), tmp_path / "other.seed")
