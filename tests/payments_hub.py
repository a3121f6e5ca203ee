"""A hub with a payment provider for tests: the acquirer simulator on a real socket (tests.acquirer_support), its
webhooks posted to the hub's real console over HTTP, and the stores' payment requests asked over real NATS.

    async with payments_hub(hub_config, tmp_path) as (hub, acquirer, secrets_file):
        answer = await ask(hub_config, "demo", "store-001", QR, {...})
        await trio.to_thread.run_sync(acquirer.pay, ref)   # the simulator posts its webhook to the hub: not on
                                                           # trio's thread, which serves the hub
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import nats.errors
import trio

from hub.app import RunningHub, run_hub
from hub.payments.webhooks import signature
from mocks.acquirer import write_secrets
from novapos.config import HubConfig
from novapos.config.hub import PaymentSettings
from novapos.tls import Certificates
from novapos.wire.payments import decode, encode, payment_request_subject
from novapos.wire.replies import ERROR_CODE_HEADER, ERROR_HEADER
from tests.acquirer_support import TEST_SECRET, RunningAcquirer, running_acquirer
from tests.conftest import query

STORE = "store-001"


def signed_header(secrets: Sequence[str], timestamp: int, raw: bytes) -> str:
    """The signature header a provider signing with each of `secrets` sends (one v1 each, as during a rotation)."""
    return ",".join([f"t={timestamp}", *(f"v1={signature(secret, timestamp, raw)}" for secret in secrets)])


def webhook_url(hub: RunningHub, tenant: str = "demo", provider: str = "simulator") -> str:
    return f"{hub.url}/api/payments/webhooks/{tenant}/{provider}"


@asynccontextmanager
async def payments_hub(hub_config: HubConfig, tmp_path: Path, *, tenants: tuple[str, ...] = ("demo",),
                       secrets: tuple[str, ...] = (TEST_SECRET,)) -> AsyncIterator[
                           tuple[RunningHub, RunningAcquirer, Path]]:
    """A hub whose provider is the simulator, which posts its webhooks to the hub's route for tenant demo; the
    secrets file both read (the hub) and write (the simulator's rotation)."""
    secrets_file = tmp_path / "webhook-secrets"
    write_secrets(secrets_file, list(secrets))
    with running_acquirer(secrets=secrets, secrets_file=secrets_file) as acquirer:
        config = dataclasses.replace(hub_config, tenants=tenants, payments=PaymentSettings(
            gateway_url=acquirer.url, timeout_s=5, webhook_secrets_file=secrets_file))
        async with trio.open_nursery() as nursery:
            hub = await nursery.start(run_hub, config)
            await trio.to_thread.run_sync(lambda: acquirer.control("webhook_url", url=webhook_url(hub)))
            yield hub, acquirer, secrets_file
            nursery.cancel_scope.cancel()


async def ask(hub_config: HubConfig, tenant: str, store: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A store's payment request to the hub (with the hub's NATS rights); the answer's object, or
    {"error": {code, message}} for an error reply."""
    async def run() -> Any:
        client = await nats.connect(hub_config.nats_url, tls=Certificates(hub_config.tls).client,
                                    **({"nkeys_seed": str(hub_config.nats_credentials)}
                                       if hub_config.nats_credentials else {}))
        try:
            return await client.request(payment_request_subject(tenant, store, kind), encode(body), timeout=10)
        finally:
            await client.close()
    with trio.fail_after(10):
        while True:  # the hub subscribes its responders just after it reports ready
            try:
                reply = await trio.to_thread.run_sync(asyncio.run, run())
                break
            except nats.errors.NoRespondersError:
                await trio.sleep(0.05)
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers:
        return {"error": {"code": int(headers[ERROR_CODE_HEADER]), "message": headers.get(ERROR_HEADER, "")}}
    return decode("the hub's answer", reply.data)


async def audit_actions(database_url: str, tenant: str = "demo") -> list[tuple[str, str, dict[str, Any]]]:
    """The tenant's payment.webhook_* audit records, oldest first: (action, actor, details)."""
    rows = await query(database_url, "SELECT action, actor, details FROM audit_records WHERE tenant = $1"
                                     " AND action LIKE 'payment.webhook_%' ORDER BY seq", tenant)
    return [(row["action"], row["actor"], json.loads(row["details"])) for row in rows]


async def intent_state(database_url: str, intent_id: str) -> str:
    [row] = await query(database_url, "SELECT state FROM payment_intents WHERE id = $1::uuid", intent_id)
    return str(row["state"])
