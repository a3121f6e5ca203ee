"""The chaos test of payments: a hub process killed with -9 between the provider's answer and its own commit.

The acquirer simulator carries out the hub's call and holds its answer; the hub (a real `novapos hub` process)
has committed the intent as processing with the call's idempotency key, and waits. It is killed. A new hub
process starts; its watchdog asks the provider how the call ended and settles the intent. The payment is not
lost (settled as the provider did it), not doubled at the provider (one execution of the key), not left
unknown (no attention needed), and the store (a real edge, following its payment events) has the outcome's
event once, its till told once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import trio

from edge.app import run_edge
from novapos.adapters.nats import store_inbox_prefix
from novapos.config import StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.payments import CANCEL, INTENT, encode, payment_request_subject
from tests.acquirer_support import RunningAcquirer, running_acquirer
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.payment_events import inbox, tills_told
from tests.test_hub_process import HubProcess

AMOUNT = 2350


def _hub(folder: Path, nats_server: EmbeddedNats, database_url: str, acquirer: RunningAcquirer, *,
         timeout_s: int, watchdog_after_s: int) -> HubProcess:
    """A hub process with these provider timers (the config refuses a watchdog that could look before a call
    times out)."""
    folder.mkdir()
    return HubProcess(folder, nats_server.url, database_url, nats_server.hub_credentials, tls=nats_server.tls_settings(),
                      settings=(
        f'[payments]\ngateway_url = "{acquirer.url}"\ntimeout_s = {timeout_s}\n'
        f'watchdog_after_s = {watchdog_after_s}\n[leases]\nttl_s = 2\n'))  # the killed hub's watchdog moves in 2 s


async def _ask_as_store(nats_server: EmbeddedNats, kind: str, body: dict[str, Any], timeout: float) -> Any:
    """(asyncio) A payment request from store-001, with its own credentials; the answer's object, or the exception."""
    client = await nats.connect(nats_server.url, nkeys_seed=str(nats_server.store_credentials("demo", "store-001")),
                                inbox_prefix=store_inbox_prefix("demo", "store-001"), **nats_server.client_options())
    try:
        reply = await client.request(payment_request_subject("demo", "store-001", kind), encode(body), timeout=timeout)
        return json.loads(reply.data) if reply.data else dict(reply.headers or {})
    except Exception as exc:
        return exc
    finally:
        await client.close()


def _ask(nats_server: EmbeddedNats, kind: str, body: dict[str, Any], timeout: float = 10.0) -> Any:
    return asyncio.run(_ask_as_store(nats_server, kind, body, timeout))


async def _intent(database_url: str, tender: str) -> dict[str, Any] | None:
    rows = await query(database_url, "SELECT id::text AS id, state, pending_key, attention, provider_ref "
                                     "FROM payment_intents WHERE tender_id = $1", tender)
    return dict(rows[0]) if rows else None


@pytest.mark.parametrize(("call", "outcome"), [("capture", "captured"), ("cancel", "cancelled")])
async def test_a_hub_killed_between_the_providers_answer_and_its_commit_loses_doubles_and_leaves_nothing(
        call: str, outcome: str, tmp_path: Path, nats_server: EmbeddedNats, database_url: str,
        store_config: StoreConfig, monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient) -> None:
    """capture: a person captures in the console (a charge); cancel: the store voids an abandoned sale's card."""
    hubs: list[HubProcess] = []
    tender = str(uuid.uuid4())
    with running_acquirer() as acquirer, tills_told(monkeypatch) as told:
        try:
            # the first waits long for the provider's answer (the test kills it meanwhile)
            hubs.append(_hub(tmp_path / "hub-1", nats_server, database_url, acquirer, timeout_s=60,
                             watchdog_after_s=62))
            await wait_until(lambda: _ready(hubs[0]), timeout=60)
            async with trio.open_nursery() as nursery:
                await nursery.start(run_edge, store_config)

                # a card the terminal approved, known to the provider, recorded at the hub as authorized
                approval = await trio.to_thread.run_sync(acquirer.report_terminal_approval, tender, AMOUNT)
                answer = await trio.to_thread.run_sync(_ask, nats_server, INTENT, {
                    "tender_id": tender, "till": "till-1", "amount_minor": AMOUNT, "authorized_minor": AMOUNT,
                    "currency": "EUR", "provider_ref": approval["id"], "auth_code": "123456",
                    "scheme": "visa", "masked": "**** 4242", "offline": False})
                assert answer["intent"]["state"] == "authorized", answer

                # the call goes out; the provider carries it out and holds its answer
                await trio.to_thread.run_sync(acquirer.hold, 1)
                if call == "capture":
                    await sign_in_admin(http, f"http://127.0.0.1:{hubs[0].port}", database_url)
                    nursery.start_soon(_post_quietly, http, f"http://127.0.0.1:{hubs[0].port}/api/payments/intents/"
                                       f"{answer['intent']['id']}/capture")
                else:
                    nursery.start_soon(trio.to_thread.run_sync, _ask, nats_server, CANCEL,
                                       {"tender_id": tender, "reason": "abandoned", "actor": "alice"}, 5.0)
                pending = await wait_until(lambda: _pending(database_url, tender, acquirer), timeout=20)
                hubs[0].kill()  # kill -9: the provider has done it, the hub never committed the answer
                assert (await _intent(database_url, tender) or {})["state"] == "processing"

                # the next one's watchdog looks at the processing intent after a few seconds
                hubs.append(_hub(tmp_path / "hub-2", nats_server, database_url, acquirer, timeout_s=1,
                                 watchdog_after_s=3))
                settled = await wait_until(lambda: _settled(database_url, tender), timeout=60)
                await wait_until(lambda: _in_inbox(store_config.state_dir, f"payment.{outcome}"), timeout=30)
                await trio.sleep(1.5)  # a second copy would have come by now
                applied = await trio.to_thread.run_sync(inbox, store_config.state_dir)
                nursery.cancel_scope.cancel()
            state = await trio.to_thread.run_sync(acquirer.state)
        finally:
            for hub in hubs:
                hub.kill()
    assert settled["state"] == outcome and settled["attention"] is None and settled["pending_key"] is None
    assert state["executions"][pending] == 1  # carried out once at the provider, never again
    payment = state["payments"][settled["provider_ref"]]
    assert payment["status"] in ({"captured"} if call == "capture" else {"canceled", "cancelled"}), payment
    if call == "capture":
        assert payment["captured_minor"] == AMOUNT
        audited = await query(database_url, "SELECT actor FROM audit_records WHERE action = 'payment.captured'")
        assert [row["actor"] for row in audited] == ["admin-demo"]  # the person's capture, audited once
    events = await query(database_url, "SELECT type FROM payment_outbox WHERE body->'intent'->>'tender_id' = $1 "
                                       "ORDER BY position", tender)
    expected = ["payment.authorized", "payment.processing", f"payment.{outcome}"]
    assert [row["type"] for row in events] == expected
    assert [kind for _, _, kind in applied] == expected  # the store has each once
    assert told.of() == [("till.till-1", kind, settled["id"]) for kind in expected]


async def _post_quietly(http: httpx.AsyncClient, url: str) -> None:
    """A console request whose hub is killed before it answers."""
    with contextlib.suppress(httpx.HTTPError):
        await http.post(url, json={}, timeout=60)


async def _ready(hub: HubProcess) -> bool:
    assert hub.process.poll() is None, hub.log
    return (await trio.to_thread.run_sync(hub.health) or (0, {}))[0] == 200


async def _pending(database_url: str, tender: str, acquirer: RunningAcquirer) -> str | None:
    """The pending call's key, once the hub has committed it as processing and the provider has carried it out."""
    intent = await _intent(database_url, tender)
    if intent is None or intent["state"] != "processing" or not intent["pending_key"]:
        return None
    key: str = intent["pending_key"]
    return key if await trio.to_thread.run_sync(acquirer.executions, key) == 1 else None


async def _settled(database_url: str, tender: str) -> dict[str, Any] | None:
    intent = await _intent(database_url, tender)
    return intent if intent is not None and intent["state"] != "processing" else None


async def _in_inbox(state_dir: Path, kind: str) -> bool:
    return any(applied == kind for _, _, applied in await trio.to_thread.run_sync(inbox, state_dir))
