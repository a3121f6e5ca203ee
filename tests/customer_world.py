"""What the customer tests share: a NATS server authorizing stores of two tenants (demo's store-001 in region north
and store-003 in south, other's o-1: tests/stock_world.py's world), and a wait for the hub's customer responders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from actors.payments.asking import HubUnreachable
from novapos.demo.embedded_nats import EmbeddedNats
from tests.payment_support import ask_store

STORES = (("demo", "store-001"), ("demo", "store-003"), ("other", "o-1"))


@pytest.fixture(name="nats_server")
def two_tenants_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """The tests' `nats_server` where this is imported (in place of conftest's, which authorizes one store)."""
    server = EmbeddedNats.authorized(tmp_path / "nats", stores=STORES).start()
    try:
        yield server
    finally:
        server.stop()


async def answering(nats_server: EmbeddedNats) -> None:
    """Wait for the started hub's customer responders (they subscribe once the hub has reached NATS)."""
    with trio.fail_after(20):
        while True:
            try:
                await ask_store(nats_server, "customer_find", {"query": "+0000000"})
                return
            except HubUnreachable:
                await trio.sleep(0.1)
