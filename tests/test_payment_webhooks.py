"""The provider's webhooks at the hub: only a body signed with an active secret, inside the tolerance, and never
seen before moves a payment; every other one is refused, changes nothing and is audited with its size and hash
(never its body); secrets rotate with an overlap, read again from the file as it changes."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from hub.payments.webhooks import HEADER, Refusal, verify
from mocks.acquirer import write_secrets
from novapos.config import HubConfig
from novapos.wire.ids import uuid7
from novapos.wire.payments import QR
from tests.acquirer_support import TEST_SECRET
from tests.conftest import query
from tests.payments_hub import STORE, ask, audit_actions, intent_state, payments_hub, signed_header, webhook_url

NOW = 1_800_000_000


def test_verify_takes_any_matching_v1_of_any_active_secret_and_nothing_else() -> None:
    raw = b'{"id":"evt_1","type":"payment.succeeded"}'
    verify(signed_header(["new"], NOW, raw), raw, ["new", "old"], NOW, 300)
    verify(signed_header(["old"], NOW, raw), raw, ["new", "old"], NOW + 300, 300)
    verify(f"t={NOW},v1={'0' * 64},v0=ignored,{signed_header(['old'], NOW, raw).split(',')[1]}", raw, ["old"], NOW, 300)
    refused: dict[str, int] = {}
    for label, header, body in [
            ("no header", None, raw), ("empty", "", raw), ("no t", "v1=" + "0" * 64, raw),
            ("no v1", f"t={NOW}", raw), ("t not a number", f"t=1e9,v1={'0' * 64}", raw),
            ("t too long", f"t={'9' * 40},v1={'0' * 64}", raw),
            ("another secret", signed_header(["gone"], NOW, raw), raw),
            ("another body", signed_header(["new"], NOW, raw), raw + b" "),
            ("stale", signed_header(["new"], NOW - 301, raw), raw),
            ("from the future", signed_header(["new"], NOW + 301, raw), raw)]:
        with pytest.raises(Refusal) as caught:
            verify(header, body, ["new", "old"], NOW, 300)
        refused[label] = caught.value.status
    assert refused == {"no header": 400, "empty": 400, "no t": 400, "no v1": 400, "t not a number": 400,
                       "t too long": 400, "another secret": 401, "another body": 401, "stale": 401,
                       "from the future": 401}


def _event(ref: str, event_type: str = "payment.succeeded", amount_minor: int = 1250) -> bytes:
    return json.dumps({"id": f"evt_{uuid7().hex}", "type": event_type, "created": int(time.time()),
                       "data": {"provider_ref": ref, "amount_minor": amount_minor, "currency": "EUR"}}).encode()


async def _post(http: httpx.AsyncClient, url: str, raw: bytes, header: str | None) -> httpx.Response:
    headers = {"content-type": "application/json", **({HEADER: header} if header is not None else {})}
    return await http.post(url, content=raw, headers=headers)


async def _qr(hub_config: HubConfig, amount_minor: int = 1250) -> dict[str, Any]:
    answer = await ask(hub_config, "demo", STORE, QR, {"tender_id": str(uuid7()), "till": "till-1",
                                                       "amount_minor": amount_minor, "currency": "EUR",
                                                       "actor": "bob"})
    assert "intent" in answer, answer
    return answer


async def _webhook_rows(database_url: str) -> list[Any]:
    return await query(database_url, "SELECT provider, event_id, tenant, outcome FROM webhook_events")


async def test_a_paid_checkout_is_accepted_applied_audited_and_its_replays_change_nothing(
        hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path) as (_hub, acquirer, _secrets):
        answer = await _qr(hub_config)
        ref = answer["intent"]["provider_ref"]
        assert "Paid" in await trio.to_thread.run_sync(acquirer.pay, ref)
        assert await intent_state(hub_config.database_url, answer["intent"]["id"]) == "captured"
        [(event_id, webhook)] = (await trio.to_thread.run_sync(acquirer.state))["webhooks"].items()
        assert webhook["deliveries"] == [200]
        assert [tuple(row) for row in await _webhook_rows(hub_config.database_url)] == \
            [("simulator", event_id, "demo", "applied")]
        # the same bytes and signature again (inside the tolerance), then re-signed: applied once, audited each time
        assert await trio.to_thread.run_sync(acquirer.replay, event_id) == 200
        assert await trio.to_thread.run_sync(lambda: acquirer.replay(event_id, fresh_signature=True)) == 200
        assert len(await _webhook_rows(hub_config.database_url)) == 1
        actions = await audit_actions(hub_config.database_url)
        assert [(action, actor) for action, actor, _ in actions] == [
            ("payment.webhook_accepted", "provider:simulator"), ("payment.webhook_replayed", "provider:simulator"),
            ("payment.webhook_replayed", "provider:simulator")]
        accepted = actions[0][2]
        assert (accepted["event_id"], accepted["outcome"], accepted["type"]) == \
            (event_id, "applied", "payment.succeeded")
        body = json.dumps(webhook["body"], separators=(",", ":")).encode()
        assert (accepted["size"], accepted["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
        [captured] = await query(hub_config.database_url, "SELECT captured_minor FROM payment_intents")
        assert captured["captured_minor"] == 1250


async def test_refused_webhooks_change_nothing_and_each_is_audited_without_its_body(
        hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path, tenants=("demo", "other")) as (hub, _acquirer, _secrets):
        answer = await _qr(hub_config)
        intent, ref = answer["intent"]["id"], answer["intent"]["provider_ref"]
        url = webhook_url(hub)
        now = int(time.time())
        good = _event(ref)
        secret_body = _event(ref).replace(b'"currency"', b'"card_number":"4242424242424242","currency"')
        refusals = [
            ("bad signature", good, signed_header(["whsec_not_ours"], now, good), url, 401),
            ("stale timestamp", good, signed_header([TEST_SECRET], now - 301, good), url, 401),
            ("missing header", good, None, url, 400),
            ("malformed header", good, "v1=abc", url, 400),
            ("body changed after signing", secret_body, signed_header([TEST_SECRET], now, good), url, 401),
            ("another tenant's path", good, signed_header([TEST_SECRET], now, good), webhook_url(hub, "other"), 400),
            ("another provider", good, signed_header([TEST_SECRET], now, good), webhook_url(hub, "demo", "acme"), 404),
            ("not an event", b'{"hello": 1}', signed_header([TEST_SECRET], now, b'{"hello": 1}'), url, 400),
        ]
        for label, raw, header, where, status in refusals:
            response = await _post(http, where, raw, header)
            assert (label, response.status_code) == (label, status), response.text
            assert response.json()["error"], label
        huge = b'{"id":"evt_huge","pad":"' + b"x" * (70 * 1024) + b'"}'

        async def chunks() -> Any:  # no Content-Length: cut off by the door as it arrives, audited by the route
            for start in range(0, len(huge), 8192):
                yield huge[start:start + 8192]
        streamed = await http.post(url, content=chunks(), headers={
            "content-type": "application/json", HEADER: signed_header([TEST_SECRET], now, huge)})
        assert streamed.status_code == 413
        declared = await _post(http, url, huge, signed_header([TEST_SECRET], now, huge))  # refused unread
        assert declared.status_code == 413
        unserved = await _post(http, webhook_url(hub, "nobody"), good, signed_header([TEST_SECRET], now, good))
        assert unserved.status_code == 404

        assert await intent_state(hub_config.database_url, intent) == "awaiting_payment_method"
        assert await _webhook_rows(hub_config.database_url) == []
        demo = await audit_actions(hub_config.database_url)
        other = await audit_actions(hub_config.database_url, "other")
        assert {action for action, _, _ in demo + other} == {"payment.webhook_refused"}
        reasons = [details["status"] for _, _, details in demo + other]
        assert sorted(reasons) == sorted([401, 401, 400, 400, 401, 400, 404, 400, 413])
        assert len(other) == 1 and "has no payment" in other[0][2]["reason"]
        for _, _, details in demo + other:
            assert set(details) == {"provider", "size", "sha256", "status", "reason"}
            assert "4242424242424242" not in json.dumps(details)
        assert ("webhook:unverified", len(good), hashlib.sha256(good).hexdigest()) in \
            [(actor, details["size"], details["sha256"]) for _, actor, details in demo]
        assert not await query(hub_config.database_url, "SELECT 1 FROM audit_heads WHERE tenant = 'nobody'")
        # the real webhook still goes through after all that
        response = await _post(http, url, good, signed_header([TEST_SECRET], int(time.time()), good))
        assert response.status_code == 200 and response.json()["outcome"] == "applied", response.text
        assert await intent_state(hub_config.database_url, intent) == "captured"


async def test_secrets_rotate_with_an_overlap_read_again_as_the_file_changes(
        hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path, secrets=("whsec_old",)) as (hub, _acquirer, secrets_file):
        url = webhook_url(hub)

        async def status(secret: str) -> int:
            raw = _event("qr_none", "payment.created")  # a type the hub does not act on: accepted, ignored
            return (await _post(http, url, raw, signed_header([secret], int(time.time()), raw))).status_code

        assert (await status("whsec_old"), await status("whsec_new")) == (200, 401)
        write_secrets(secrets_file, ["whsec_new", "whsec_old"])  # the overlap: both listed, newest first
        assert (await status("whsec_new"), await status("whsec_old")) == (200, 200)
        write_secrets(secrets_file, ["whsec_new"])  # the old one removed
        assert (await status("whsec_new"), await status("whsec_old")) == (200, 401)
        secrets_file.unlink()  # no file: every webhook refused (the provider retries later), with a logged reason
        assert await status("whsec_new") == 503
        write_secrets(secrets_file, ["whsec_new"])
        assert await status("whsec_new") == 200
        outcomes = [row["outcome"] for row in await _webhook_rows(hub_config.database_url)]
        assert outcomes == ["ignored"] * 5
        actions = [action.removeprefix("payment.webhook_") for action, _, _ in
                   await audit_actions(hub_config.database_url)]
        assert actions == ["accepted", "refused", "accepted", "accepted", "accepted", "refused", "refused",
                           "accepted"]


async def test_a_payment_for_another_amount_than_asked_is_applied_as_the_provider_took_it_and_flagged(
        hub_config: HubConfig, tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with payments_hub(hub_config, tmp_path) as (hub, _acquirer, _secrets):
        answer = await _qr(hub_config)
        raw = _event(answer["intent"]["provider_ref"], amount_minor=1000)
        response = await _post(http, webhook_url(hub), raw, signed_header([TEST_SECRET], int(time.time()), raw))
        assert response.status_code == 200, response.text
        [row] = await query(hub_config.database_url, "SELECT state, captured_minor, attention FROM payment_intents")
        assert (row["state"], row["captured_minor"]) == ("captured", 1000)
        assert "took 1000 where 1250 was asked" in row["attention"]
